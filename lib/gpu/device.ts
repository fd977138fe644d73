/**
 * WebGPU adapter and device acquisition.
 *
 * Asks for the features nanolm can use (timestamp queries for kernel profiling, f16 shaders) when the adapter has
 * them, and raises the limits that matter for big tensors (buffer sizes, storage bindings, workgroup memory) to
 * whatever the adapter allows, since WebGPU's defaults (128 MiB bindings, 16 KiB workgroup memory) are far below
 * what real GPUs offer.
 *
 * @module
 */

/** What a {@linkcode GpuContext} knows about the hardware. */
export interface GpuInfo {
  /** Adapter description, e.g. `"NVIDIA H100 80GB HBM3"` or `"llvmpipe (LLVM 15.0.6, 256 bits)"`. */
  description: string;
  /** True for software adapters (Mesa llvmpipe/lavapipe): correct but slow, so defaults shrink. */
  isSoftware: boolean;
  /** Whether `timestamp-query` was enabled (GPU-side kernel timings). */
  timestamps: boolean;
  /** Whether `shader-f16` was enabled. */
  f16: boolean;
  /**
   * The adapter's limit on bindings per bind group. wgpu's OpenGL backend (which Deno falls back to on Linux when no
   * Vulkan driver is installed) reports none (2^32 - 1); so does its Vulkan backend on NVIDIA, so this alone does not
   * tell the backend (the command-line programs also look for a Vulkan driver).
   */
  maxBindingsPerBindGroup: number;
}

/** An acquired device and what it can do. */
export interface GpuContext {
  /** The WebGPU device all tensors live on. */
  device: GPUDevice;
  /** Facts about the adapter. */
  info: GpuInfo;
}

const wantedLimits = [
  "maxBufferSize",
  "maxStorageBufferBindingSize",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupsPerDimension",
  "maxStorageBuffersPerShaderStage",
] as const;

/**
 * Requests a WebGPU device with the features and limits nanolm wants.
 *
 * @example
 * ```ts
 * import { requestGpu } from "./device.ts";
 * const { device, info } = await requestGpu();
 * // The adapter's own limits, not WebGPU's defaults (a 128 MiB storage binding would cap a vocabulary's logits).
 * const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
 * const limit = adapter!.limits.maxStorageBufferBindingSize;
 * if (device.limits.maxStorageBufferBindingSize !== limit) throw new Error(`default limits on ${info.description}`);
 * device.destroy();
 * ```
 */
export async function requestGpu(options: { powerPreference?: GPUPowerPreference } = {}): Promise<GpuContext> {
  if (typeof navigator === "undefined" || !("gpu" in navigator)) {
    throw new Error("WebGPU is not available in this runtime: run nanolm with Deno 2 or newer (navigator.gpu)");
  }
  const adapter = await navigator.gpu.requestAdapter({
    powerPreference: options.powerPreference ?? "high-performance",
  });
  if (!adapter) {
    throw new Error(
      "No WebGPU adapter found. On a machine without a GPU install a Vulkan software driver " +
        "(Debian/Ubuntu: `apt-get install mesa-vulkan-drivers`); on a GPU machine make sure the Vulkan loader " +
        "(libvulkan1) and the vendor's Vulkan driver are installed.",
    );
  }
  const features: GPUFeatureName[] = [];
  for (const f of ["timestamp-query", "shader-f16"] as const) if (adapter.features.has(f)) features.push(f);
  const requiredLimits: Record<string, number> = {};
  for (const name of wantedLimits) requiredLimits[name] = adapter.limits[name];
  const device = await adapter.requestDevice({ requiredFeatures: features, requiredLimits });
  const description = adapter.info.description || adapter.info.device || adapter.info.vendor || "unknown adapter";
  return {
    device,
    info: {
      description,
      isSoftware: adapter.info.isFallbackAdapter || /llvmpipe|lavapipe|swiftshader|software/i.test(description),
      timestamps: device.features.has("timestamp-query"),
      f16: device.features.has("shader-f16"),
      maxBindingsPerBindGroup: adapter.limits.maxBindingsPerBindGroup,
    },
  };
}
