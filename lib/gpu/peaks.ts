/**
 * Peak arithmetic and memory rates of known GPUs, for model FLOPs utilisation (MFU) and rooflines.
 *
 * nanolm computes in f32 on the GPU's ordinary (SIMT) cores: WebGPU exposes no tensor cores. So the peak that an
 * MFU figure is measured against is the f32 vector peak, not the tensor-core figure of the data sheets (an H100's
 * 67 TFLOP/s f32 rather than its 989 TFLOP/s bf16). WebGPU names the adapter but reports neither peak, hence the
 * table; for a GPU that is not in it, pass the peak yourself (`--peak-tflops`).
 *
 * @module
 */

/** Data-sheet peaks of one GPU. */
export interface GpuPeaks {
  /** Marketing name. */
  name: string;
  /** Peak f32 (non-tensor) TFLOP/s at boost clock. */
  f32Tflops: number;
  /** Peak memory bandwidth in GB/s. */
  memoryGBps: number;
}

/** Known GPUs, matched against the adapter description in order (more specific patterns first). */
const KNOWN: [RegExp, GpuPeaks][] = [
  [/H200/i, { name: "NVIDIA H200", f32Tflops: 67, memoryGBps: 4800 }],
  [/H100.*PCIe/i, { name: "NVIDIA H100 PCIe", f32Tflops: 51, memoryGBps: 2000 }],
  [/H100/i, { name: "NVIDIA H100 SXM", f32Tflops: 67, memoryGBps: 3350 }],
  [/GH200/i, { name: "NVIDIA GH200", f32Tflops: 67, memoryGBps: 4000 }],
  [/A100.*80GB/i, { name: "NVIDIA A100 80GB", f32Tflops: 19.5, memoryGBps: 2039 }],
  [/A100/i, { name: "NVIDIA A100 40GB", f32Tflops: 19.5, memoryGBps: 1555 }],
  [/L40S/i, { name: "NVIDIA L40S", f32Tflops: 91.6, memoryGBps: 864 }],
  [/\bL4\b/i, { name: "NVIDIA L4", f32Tflops: 30.3, memoryGBps: 300 }],
  [/\bA10\b/i, { name: "NVIDIA A10", f32Tflops: 31.2, memoryGBps: 600 }],
  [/\bT4\b/i, { name: "NVIDIA T4", f32Tflops: 8.1, memoryGBps: 320 }],
  [/V100/i, { name: "NVIDIA V100", f32Tflops: 15.7, memoryGBps: 900 }],
  [/RTX 4090/i, { name: "NVIDIA GeForce RTX 4090", f32Tflops: 82.6, memoryGBps: 1008 }],
  [/RTX 4080/i, { name: "NVIDIA GeForce RTX 4080", f32Tflops: 48.7, memoryGBps: 717 }],
  [/RTX 3090/i, { name: "NVIDIA GeForce RTX 3090", f32Tflops: 35.6, memoryGBps: 936 }],
  [/RTX 3080/i, { name: "NVIDIA GeForce RTX 3080", f32Tflops: 29.8, memoryGBps: 760 }],
  [/MI300X/i, { name: "AMD Instinct MI300X", f32Tflops: 163.4, memoryGBps: 5300 }],
  [/Apple M1 Max/i, { name: "Apple M1 Max", f32Tflops: 10.4, memoryGBps: 400 }],
  [/Apple M2 Max/i, { name: "Apple M2 Max", f32Tflops: 13.6, memoryGBps: 400 }],
  [/Apple M1/i, { name: "Apple M1", f32Tflops: 2.6, memoryGBps: 68 }],
  [/Apple M2/i, { name: "Apple M2", f32Tflops: 3.6, memoryGBps: 100 }],
];

/**
 * The peaks of the GPU an adapter description names, or undefined when it is not a known one.
 *
 * @example
 * ```ts
 * import { gpuPeaks } from "@nanolm/nanolm/gpu";
 * if (gpuPeaks("NVIDIA H100 80GB HBM3")?.f32Tflops !== 67) throw new Error("the H100's f32 peak is 67 TFLOP/s");
 * if (gpuPeaks("llvmpipe (LLVM 15.0.6, 256 bits)") !== undefined) throw new Error("a CPU adapter has no table entry");
 * ```
 */
export function gpuPeaks(description: string): GpuPeaks | undefined {
  return KNOWN.find(([pattern]) => pattern.test(description))?.[1];
}
