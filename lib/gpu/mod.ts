/**
 * The GPU: acquiring the WebGPU device, the backend every tensor goes through (buffer pool, batched dispatch,
 * pipeline cache, GPU timestamps and per-dispatch profiles with each kernel's predicted cost), memory statistics,
 * and the peak rates of known GPUs.
 *
 * @example
 * ```ts
 * import { gpuPeaks } from "@nanolm/nanolm/gpu";
 * if (gpuPeaks("NVIDIA H200")?.f32Tflops !== 67) throw new Error("unknown H200");
 * ```
 *
 * @module
 */
export {
  type Backend,
  type BackendLimits,
  type DispatchArgs,
  type DispatchProfile,
  formatBytes,
  gpu,
  type GpuBuffer,
  initGpu,
  type Kernel,
  type KernelTiming,
  type MemoryStats,
  Recording,
} from "./backend.ts";
export { type GpuInfo } from "./device.ts";
export type { KernelCost } from "../../kernels/common.ts";
export { type GpuPeaks, gpuPeaks } from "./peaks.ts";
export type { KernelSource } from "../../kernels/common.ts";
