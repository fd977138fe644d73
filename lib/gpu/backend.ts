/**
 * The narrow interface between tensors and the GPU: alloc, free, write, read, prepare, dispatch.
 *
 * Everything above this module is GPU-agnostic bookkeeping; everything WebGPU-specific lives here.
 *
 * - Buffers come from a pool of size classes and go back to it on free. Reuse is safe without waiting because
 *   all work goes through one queue in order: a buffer freed after its last recorded use is only overwritten by
 *   work recorded later.
 * - Dispatches are recorded into one open compute pass and submitted in batches; nothing here waits on the GPU
 *   except {@linkcode Backend.read}, which is explicit and async. A round trip costs >= 10 ms in Deno.
 * - `queue.writeBuffer` runs before any command buffer submitted after it, so before writing into a pooled
 *   buffer the pending commands are submitted first (they may still read the buffer's previous contents).
 * - Pipelines are cached by their WGSL source: kernels are generated per shape, and the same source compiles once.
 * - A fixed list of dispatches that runs again and again (a decode step) is captured once with
 *   {@linkcode Backend.record} and encoded again with {@linkcode Backend.replay}: its bind groups are built and its
 *   limits checked once, at record time.
 *
 * @module
 */
import type { KernelCost, KernelSource } from "../../kernels/common.ts";
import { type GpuContext, type GpuInfo, requestGpu } from "./device.ts";
import { portableWgsl } from "./wgsl.ts";

/**
 * A pooled storage buffer, or a byte range of one ({@linkcode Backend.range}). Dispatches bind `bytes` bytes from
 * `offset`, not the whole pooled buffer, so that a tensor just under the storage binding limit is not refused
 * because its size class is over it.
 */
export interface GpuBuffer {
  /** The WebGPU buffer. */
  readonly buffer: GPUBuffer;
  /** Size in bytes of the whole WebGPU buffer (a size class, at least the requested size). */
  readonly size: number;
  /** Bytes that dispatches bind: the size asked of {@linkcode Backend.alloc}, or the range's length. */
  readonly bytes: number;
  /** Byte offset of the bound range (0 for a buffer from {@linkcode Backend.alloc}). */
  readonly offset: number;
  /** Shape of the tensor the buffer was allocated for, for errors. */
  readonly shape?: readonly number[];
  /** Its dtype, for errors. */
  readonly dtype?: string;
}

/**
 * The limits the backend enforces: the device's, or lower ones set by {@linkcode Backend.setLimits} (tests use
 * that to reach the code paths of huge tensors with small ones).
 */
export interface BackendLimits {
  /** Most bytes one storage binding may cover (`maxStorageBufferBindingSize`). */
  maxStorageBufferBindingSize: number;
  /**
   * Most loop iterations one shader invocation may run in all. Mesa's llvmpipe (lavapipe) ends every shader's loops
   * after 65,535 iterations (`LP_MAX_TGSI_LOOP_ITERATIONS`, shared by all loops of a shader) and carries on with
   * whatever the loops had computed: kernels that would loop longer are refused there instead. Infinity elsewhere.
   */
  loopIterations: number;
}

/** The loop limit of Mesa's llvmpipe, shared by every loop of one shader invocation. */
const LLVMPIPE_LOOP_ITERATIONS = 65535;

/** A compiled kernel: pipeline plus its name for profiles. */
export interface Kernel {
  /** The compute pipeline. */
  readonly pipeline: GPUComputePipeline;
  /** Name used in profiles, e.g. `"matmul_128x128"`. */
  readonly name: string;
}

/** One dispatch's bindings: storage buffers in binding order, then an optional uniform block. */
export interface DispatchArgs {
  /** Storage buffers bound at @binding(0..n-1) of group 0, in order. */
  buffers: GpuBuffer[];
  /** Workgroup counts. */
  workgroups: [number, number?, number?];
  /** Values for a uniform block bound at @binding(n), as 32-bit words (f32 or u32 written by the caller). */
  uniforms?: ArrayBuffer;
  /** The dispatch's predicted FLOPs and bytes, kept in profiles ({@linkcode Backend.run} passes the kernel's). */
  cost?: KernelCost;
}

/** Memory use reported by {@linkcode Backend.memory}. */
export interface MemoryStats {
  /** Bytes in buffers that tensors hold. */
  inUseBytes: number;
  /** Number of buffers that tensors hold. */
  inUseBuffers: number;
  /** Bytes cached in the pool for reuse. */
  pooledBytes: number;
  /** Bytes of all buffers the pool created and has not destroyed. */
  totalBytes: number;
}

/** Per-kernel GPU time gathered by {@linkcode Backend.profile}. */
export interface KernelTiming {
  /** Kernel name. */
  name: string;
  /** Number of dispatches. */
  count: number;
  /** Total GPU time in milliseconds. */
  ms: number;
}

/**
 * One dispatch seen by {@linkcode Backend.profileDispatches}: its kernel, predicted cost, when the host recorded and
 * submitted it, and when the GPU ran it.
 */
export interface DispatchProfile {
  /** Kernel name. */
  name: string;
  /** Predicted FLOPs and bytes (from the kernel's generator); undefined for a kernel dispatched without one. */
  cost?: KernelCost;
  /** Host time (`performance.now()`, ms) when the dispatch was recorded. */
  hostMs: number;
  /** Host time (ms) when the batch holding it was submitted to the GPU. */
  submitMs: number;
  /**
   * GPU timestamp (ms) of the start of its pass, on the GPU's clock, counted from the earliest start in the
   * profile; NaN without the `timestamp-query` feature.
   */
  gpuStartMs: number;
  /** GPU timestamp (ms) of the end of its pass, on the same scale as `gpuStartMs`; NaN without timestamps. */
  gpuEndMs: number;
}

/** One captured dispatch: everything {@linkcode Backend.replay} needs to encode it again. */
interface RecordedDispatch {
  kernel: Kernel;
  bindGroup: GPUBindGroup;
  x: number;
  y: number;
  z: number;
  cost: KernelCost | undefined;
}

/** A dispatch while its profile is gathered: raw GPU ticks (ns) until the profile ends. */
interface ProfiledDispatch {
  name: string;
  cost: KernelCost | undefined;
  hostMs: number;
  submitMs: number;
  begin: bigint;
  end: bigint;
}

/** The state of a {@linkcode Backend.profileDispatches} in progress. */
interface ProfileState {
  /** The timestamp queries and their resolve buffer; null without the `timestamp-query` feature. */
  timer: { querySet: GPUQuerySet; resolve: GPUBuffer } | null;
  /** Every dispatch profiled so far, in recording order. */
  dispatches: ProfiledDispatch[];
  /** The dispatches of the current batch: those whose timestamps the next submit resolves. */
  batch: ProfiledDispatch[];
  reads: Promise<void>[];
}

/** What {@linkcode Backend.record} captures while its callback runs. */
interface RecordingTarget {
  dispatches: RecordedDispatch[];
  uniforms: GPUBuffer[];
}

/** The dispatches of each live recording, kept out of the public type. */
const recorded = new WeakMap<Recording, RecordingTarget>();

/**
 * Dispatches captured by {@linkcode Backend.record}: pipelines, bind groups built once, and workgroup counts, to be
 * encoded again by {@linkcode Backend.replay}. The bind groups hold the buffers they were recorded with, so those
 * must stay allocated (not freed to the pool) for as long as the recording is replayed.
 *
 * @example
 * ```ts
 * import { initGpu } from "@nanolm/nanolm/gpu";
 * const backend = await initGpu();
 * const recording = backend.record(() => {}); // nothing dispatched: an empty recording
 * backend.replay(recording, 3);
 * if (recording.names.length !== 0) throw new Error("expected no dispatches");
 * recording.dispose();
 * ```
 */
export class Recording {
  /** Kernel name of each recorded dispatch, in order. */
  readonly names: readonly string[];
  #disposed = false;

  /** Made by {@linkcode Backend.record}; one constructed elsewhere holds no dispatches and cannot be replayed. */
  constructor(names: readonly string[]) {
    this.names = names;
  }

  /** Whether {@linkcode Recording.dispose} was called. */
  get disposed(): boolean {
    return this.#disposed;
  }

  /** Destroys the uniform buffers the recording owns; replaying it afterwards throws. Safe to call twice. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const b of recorded.get(this)?.uniforms ?? []) b.destroy();
    recorded.delete(this);
  }
}

const MAX_DISPATCHES_PER_SUBMIT = 512;
/**
 * Deno waits for a read or a sync by blocking until the GPU has finished everything submitted, so the GPU idles
 * until the next submission: the first one after such a wait carries this many dispatches, each later one twice the
 * last, up to {@linkcode MAX_DISPATCHES_PER_SUBMIT}.
 */
const DISPATCHES_AFTER_IDLE = 8;
/** Elements past this cannot be indexed by the kernels' u32 arithmetic. */
const MAX_ELEMENTS = 2 ** 32 - 1;
// WebGPU caps a query set at 4096 queries: two timestamps per dispatch.
const MAX_PROFILED_DISPATCHES = 2048;

/**
 * A byte count for messages: `"3.29 GB"`, `"2.00 GiB"` for exact powers of two of a GiB or MiB.
 *
 * @example
 * ```ts
 * import { formatBytes } from "@nanolm/nanolm/gpu";
 * const shown = [formatBytes(3_290_000_000), formatBytes(2 ** 31), formatBytes(2 ** 27)];
 * if (shown.join(", ") !== "3.29 GB, 2.00 GiB, 128 MiB") throw new Error(shown.join(", "));
 * ```
 */
export function formatBytes(bytes: number): string {
  if (bytes >= 2 ** 30 && bytes % 2 ** 30 === 0) return `${(bytes / 2 ** 30).toFixed(2)} GiB`;
  if (bytes >= 2 ** 20 && bytes % 2 ** 20 === 0) return `${bytes / 2 ** 20} MiB`;
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(2)} GB`;
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(2)} MB`;
  return `${bytes} bytes`;
}

/**
 * Rounds a byte size up to its pool size class: powers of two up to 1 MiB, then eighths of a power of two.
 *
 * @example
 * ```ts
 * import { sizeClass } from "./backend.ts"; // internal to the gpu layer: not exported by `@nanolm/nanolm/gpu`
 * if (sizeClass(100) !== 128 || sizeClass(1_500_000) !== 1_572_864) throw new Error("unexpected size class");
 * ```
 */
export function sizeClass(bytes: number): number {
  const b = Math.max(16, Math.ceil(bytes / 16) * 16);
  if (b <= 1 << 20) return 2 ** Math.ceil(Math.log2(b));
  const step = 2 ** Math.floor(Math.log2(b)) / 8;
  return Math.ceil(b / step) * step;
}

/**
 * The WebGPU backend. One exists per process; get it with {@linkcode initGpu} / {@linkcode gpu}.
 *
 * @example
 * ```ts
 * import { initGpu } from "@nanolm/nanolm/gpu";
 * const backend = await initGpu();
 * const buf = backend.alloc(16);
 * backend.write(buf, new Float32Array([1, 2, 3, 4]));
 * const back = new Float32Array(await backend.read(buf, 16));
 * if (back.join() !== "1,2,3,4") throw new Error(`read back ${back}`);
 * backend.free(buf);
 * ```
 */
export class Backend {
  /** The WebGPU device. */
  readonly device: GPUDevice;
  /** Adapter facts. */
  readonly info: GpuInfo;
  #pool = new Map<number, GPUBuffer[]>();
  #pooledBytes = 0;
  #totalBytes = 0;
  #inUseBytes = 0;
  #inUseBuffers = 0;
  #kernels = new Map<string, Kernel>();
  #encoder: GPUCommandEncoder | null = null;
  #pass: GPUComputePassEncoder | null = null;
  #pending = 0;
  /** Dispatches that trigger the next submission (see {@linkcode DISPATCHES_AFTER_IDLE}). */
  #submitAt = DISPATCHES_AFTER_IDLE;
  #transient: GPUBuffer[] = [];
  #profile: ProfileState | null = null;
  #submits = 0;
  #limits: BackendLimits;
  #recording: RecordingTarget | null = null;

  /** Wraps an acquired device; use {@linkcode initGpu} rather than constructing one. */
  constructor(ctx: GpuContext) {
    this.device = ctx.device;
    this.info = ctx.info;
    this.#limits = this.#deviceLimits();
    this.device.addEventListener?.("uncapturederror", (e) => {
      console.error(`WebGPU error: ${(e as GPUUncapturedErrorEvent).error.message}`);
    });
  }

  /** The limits this backend enforces (see {@linkcode BackendLimits}). */
  get limits(): Readonly<BackendLimits> {
    return this.#limits;
  }

  /**
   * Storage buffers one dispatch may bind when `others` of its bind group's bindings are not storage buffers (a
   * uniform block): the device's per-stage limit, within one bind group. For kernels that take a list of tensors.
   *
   * @example
   * ```ts
   * import { initGpu } from "@nanolm/nanolm/gpu";
   * const backend = await initGpu();
   * if (backend.storageBindings(1) > backend.device.limits.maxStorageBuffersPerShaderStage) throw new Error("over");
   * ```
   */
  storageBindings(others = 0): number {
    const limits = this.device.limits;
    return Math.min(limits.maxStorageBuffersPerShaderStage, limits.maxBindingsPerBindGroup - others);
  }

  /**
   * Lowers the limits the backend enforces (never above the device's; `{}` restores the device's) and returns the
   * previous ones. For tests: a binding limit of a few KiB makes ops split or refuse tensors of a few thousand
   * elements exactly as they would tensors of gigabytes.
   *
   * @example
   * ```ts
   * import { initGpu } from "@nanolm/nanolm/gpu";
   * const backend = await initGpu();
   * const before = backend.setLimits({ maxStorageBufferBindingSize: 4096 });
   * try {
   *   if (backend.limits.maxStorageBufferBindingSize !== 4096) throw new Error("limit not lowered");
   * } finally {
   *   backend.setLimits(before);
   * }
   * ```
   */
  setLimits(limits: Partial<BackendLimits>): BackendLimits {
    const before = this.#limits, device = this.#deviceLimits();
    const binding = limits.maxStorageBufferBindingSize ?? device.maxStorageBufferBindingSize;
    const loops = limits.loopIterations ?? device.loopIterations;
    if (!(binding >= 256 && binding % 4 === 0) || !(loops >= 1)) {
      throw new RangeError(`setLimits: a binding limit of at least 256 bytes (a multiple of 4) and loops >= 1`);
    }
    this.#limits = {
      maxStorageBufferBindingSize: Math.min(binding, device.maxStorageBufferBindingSize),
      loopIterations: Math.min(loops, device.loopIterations),
    };
    return before;
  }

  #deviceLimits(): BackendLimits {
    return {
      maxStorageBufferBindingSize: this.device.limits.maxStorageBufferBindingSize,
      loopIterations: /llvmpipe|lavapipe/i.test(this.info.description) ? LLVMPIPE_LOOP_ITERATIONS : Infinity,
    };
  }

  /**
   * Takes a storage buffer of at least `bytes` bytes from the pool (its contents are undefined). `shape` and `dtype`
   * describe the tensor it is for in errors.
   */
  alloc(bytes: number, shape?: readonly number[], dtype?: string): GpuBuffer {
    if (!(bytes >= 0) || !Number.isFinite(bytes)) throw new RangeError(`Buffer size must be >= 0, got ${bytes}`);
    const max = this.device.limits.maxBufferSize;
    // A buffer that fits but whose size class does not is allocated at its own size (rounded to 16 bytes).
    let size = sizeClass(bytes);
    if (size > max) size = Math.ceil(bytes / 16) * 16;
    if (size > max || bytes / 4 > MAX_ELEMENTS) {
      const limit = size > max ? `maxBufferSize of ${formatBytes(max)}` : `${MAX_ELEMENTS} elements a tensor`;
      const what = shape ? `A tensor of shape ${describe(shape, dtype)}` : "A buffer";
      throw new RangeError(`${what} needs ${formatBytes(bytes)}; this GPU's ${limit} is less`);
    }
    let buffer = this.#pool.get(size)?.pop();
    if (buffer) {
      this.#pooledBytes -= size;
    } else {
      buffer = this.device.createBuffer({
        size,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      });
      this.#totalBytes += size;
    }
    this.#inUseBytes += size;
    this.#inUseBuffers++;
    return { buffer, size, bytes, offset: 0, shape, dtype };
  }

  /**
   * `bytes` bytes of `buf` from byte `offset` (relative to `buf`'s own range), to bind where a kernel works on a
   * part of a buffer too large for one binding. `offset` must be a multiple of the device's
   * `minStorageBufferOffsetAlignment`. Never {@linkcode Backend.free} a range.
   *
   * @example
   * ```ts
   * import { initGpu } from "@nanolm/nanolm/gpu";
   * const backend = await initGpu();
   * const buf = backend.alloc(1024);
   * const half = backend.range(buf, 0, buf.bytes / 2);
   * if (half.bytes !== 512 || half.buffer !== buf.buffer) throw new Error("not the first half");
   * backend.free(buf);
   * ```
   */
  range(buf: GpuBuffer, offset: number, bytes: number): GpuBuffer {
    const start = buf.offset + offset;
    if (start % this.device.limits.minStorageBufferOffsetAlignment !== 0 || offset < 0 || offset + bytes > buf.bytes) {
      throw new RangeError(
        `range: [${offset}, ${offset + bytes}) is not an aligned range of a ${buf.bytes}-byte buffer`,
      );
    }
    return { buffer: buf.buffer, size: buf.size, bytes, offset: start, shape: buf.shape, dtype: buf.dtype };
  }

  /** Returns a buffer to the pool. Work already recorded that reads it still sees its contents. */
  free(buf: GpuBuffer): void {
    this.#inUseBytes -= buf.size;
    this.#inUseBuffers--;
    let list = this.#pool.get(buf.size);
    if (!list) this.#pool.set(buf.size, list = []);
    list.push(buf.buffer);
    this.#pooledBytes += buf.size;
  }

  /** Destroys every pooled buffer (memory held by tensors stays). */
  releasePool(): void {
    this.flush();
    for (const [size, list] of this.#pool) {
      for (const b of list) b.destroy();
      this.#totalBytes -= size * list.length;
    }
    this.#pool.clear();
    this.#pooledBytes = 0;
  }

  /** Current GPU memory accounting. */
  memory(): MemoryStats {
    return {
      inUseBytes: this.#inUseBytes,
      inUseBuffers: this.#inUseBuffers,
      pooledBytes: this.#pooledBytes,
      totalBytes: this.#totalBytes,
    };
  }

  /** Number of queue submissions so far (for tests that check batching). */
  get submits(): number {
    return this.#submits;
  }

  /** Copies host data into a buffer (from `byteOffset` of its range), ordered after all work recorded so far. */
  write(buf: GpuBuffer, data: ArrayBufferView, byteOffset = 0): void {
    if (data.byteLength + byteOffset > buf.bytes) {
      throw new RangeError(`Write of ${data.byteLength} bytes at ${byteOffset} overflows a ${buf.bytes}-byte buffer`);
    }
    if (this.#pending > 0) this.flush();
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    // writeBuffer needs a multiple of 4 bytes.
    const padded = bytes.byteLength % 4 === 0 ? bytes : (() => {
      const p = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
      p.set(bytes);
      return p;
    })();
    this.device.queue.writeBuffer(buf.buffer, buf.offset + byteOffset, padded as Uint8Array<ArrayBuffer>);
  }

  /** Reads the first `bytes` bytes of each buffer's range back to the host, with one GPU round trip for all. */
  async readMany(items: { buf: GpuBuffer; bytes: number }[]): Promise<ArrayBuffer[]> {
    const offsets: number[] = [];
    let total = 0;
    for (const { bytes } of items) {
      offsets.push(total);
      total += Math.ceil(bytes / 4) * 4;
    }
    if (total === 0) return items.map(() => new ArrayBuffer(0));
    this.flush();
    const encoder = this.device.createCommandEncoder();
    const staging = this.device.createBuffer({ size: total, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    items.forEach(({ buf, bytes }, i) => {
      if (bytes > 0) encoder.copyBufferToBuffer(buf.buffer, buf.offset, staging, offsets[i], Math.ceil(bytes / 4) * 4);
    });
    this.#submit(encoder);
    const mapped = staging.mapAsync(GPUMapMode.READ);
    this.#submitAt = DISPATCHES_AFTER_IDLE;
    await mapped;
    const all = staging.getMappedRange();
    const out = items.map(({ bytes }, i) => all.slice(offsets[i], offsets[i] + bytes));
    staging.unmap();
    staging.destroy();
    return out;
  }

  /** Reads one buffer back (see {@linkcode Backend.readMany}). */
  async read(buf: GpuBuffer, bytes: number): Promise<ArrayBuffer> {
    return (await this.readMany([{ buf, bytes }]))[0];
  }

  /** Compiles a WGSL compute shader once per distinct source (entry point `main`). */
  prepare(name: string, source: string): Kernel {
    let kernel = this.#kernels.get(source);
    if (!kernel) {
      const module = this.device.createShaderModule({ code: portableWgsl(source), label: name });
      const pipeline = this.device.createComputePipeline({
        layout: "auto",
        compute: { module, entryPoint: "main" },
        label: name,
      });
      kernel = { pipeline, name };
      this.#kernels.set(source, kernel);
    }
    return kernel;
  }

  /** Number of distinct compiled kernels. */
  get kernelCount(): number {
    return this.#kernels.size;
  }

  /**
   * Records one dispatch. It runs after everything recorded before it; nothing waits. Inside
   * {@linkcode Backend.record} it is captured instead.
   */
  dispatch(kernel: Kernel, args: DispatchArgs): void {
    const [x, y = 1, z = 1] = args.workgroups;
    if (x === 0 || y === 0 || z === 0) return;
    const max = this.device.limits.maxComputeWorkgroupsPerDimension;
    if (x > max || y > max || z > max) {
      throw new RangeError(
        `Kernel ${kernel.name} needs ${x}x${y}x${z} workgroups; this GPU allows ${max} per dimension`,
      );
    }
    const limit = this.#limits.maxStorageBufferBindingSize;
    const entries: GPUBindGroupEntry[] = args.buffers.map((b, i) => {
      if (b.bytes > limit) throw this.#bindingError(kernel.name, i, b);
      // Whole 16-byte words (vec4 arrays), never past the buffer; at least 16 bytes (no binding may be empty).
      const size = Math.min(Math.max(16, Math.ceil(b.bytes / 16) * 16), b.size - b.offset, limit);
      return { binding: i, resource: { buffer: b.buffer, offset: b.offset, size } };
    });
    if (args.uniforms) {
      const ub = this.device.createBuffer({
        size: Math.max(16, Math.ceil(args.uniforms.byteLength / 16) * 16),
        usage: GPUBufferUsage.UNIFORM,
        mappedAtCreation: true,
      });
      new Uint8Array(ub.getMappedRange()).set(new Uint8Array(args.uniforms));
      ub.unmap();
      // A recording replays its uniforms, so they live as long as it does rather than until the next submit.
      (this.#recording?.uniforms ?? this.#transient).push(ub);
      entries.push({ binding: args.buffers.length, resource: { buffer: ub } });
    }
    const bindGroup = this.device.createBindGroup({ layout: kernel.pipeline.getBindGroupLayout(0), entries });
    if (this.#recording) this.#recording.dispatches.push({ kernel, bindGroup, x, y, z, cost: args.cost });
    else this.#encode(kernel, bindGroup, x, y, z, args.cost);
  }

  /**
   * Encodes one dispatch into the open pass (or its own timed pass while profiling) and submits in batches: 8
   * dispatches after the GPU went idle, doubling up to 512.
   */
  #encode(
    kernel: Kernel,
    bindGroup: GPUBindGroup,
    x: number,
    y: number,
    z: number,
    cost: KernelCost | undefined,
  ): void {
    const profile = this.#profile;
    if (profile) {
      this.#encodeProfiled(profile, kernel, bindGroup, [x, y, z], cost);
    } else {
      const pass = this.#beginPass();
      pass.setPipeline(kernel.pipeline);
      pass.setBindGroup(0, bindGroup);
      pass.dispatchWorkgroups(x, y, z);
    }
    if (++this.#pending >= this.#submitAt) this.#submitRecorded();
  }

  /** Encodes one dispatch while profiling: noted with its cost and host time, in a timed pass of its own. */
  #encodeProfiled(
    profile: ProfileState,
    kernel: Kernel,
    bindGroup: GPUBindGroup,
    [x, y, z]: [number, number, number],
    cost: KernelCost | undefined,
  ): void {
    const dispatch = { name: kernel.name, cost, hostMs: performance.now(), submitMs: NaN, begin: -1n, end: -1n };
    profile.dispatches.push(dispatch);
    let pass: GPUComputePassEncoder;
    if (profile.timer) {
      // A pass per dispatch so that each gets its own begin/end timestamps.
      if (profile.batch.length >= MAX_PROFILED_DISPATCHES) this.flush();
      this.#endPass();
      this.#encoder ??= this.device.createCommandEncoder();
      const q = profile.batch.length * 2;
      pass = this.#encoder.beginComputePass({
        timestampWrites: { querySet: profile.timer.querySet, beginningOfPassWriteIndex: q, endOfPassWriteIndex: q + 1 },
      });
    } else {
      pass = this.#beginPass();
    }
    profile.batch.push(dispatch);
    pass.setPipeline(kernel.pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(x, y, z);
    if (profile.timer) pass.end();
  }

  /**
   * Runs `fn` and captures the dispatches it issues (through {@linkcode Backend.run} or {@linkcode Backend.dispatch})
   * instead of encoding them: each kernel's pipeline, its bind group, built once here, and its workgroups. The
   * checks of `run` and `dispatch` (loop and binding limits, workgroup counts) apply now, at record time. Writes,
   * reads and allocations inside `fn` happen at once, as usual; only dispatches are deferred. Recordings do not
   * nest. Encode the result with {@linkcode Backend.replay}; {@linkcode Recording.dispose} it when done.
   *
   * @example
   * ```ts
   * import { initGpu } from "@nanolm/nanolm/gpu";
   * import { tensor } from "@nanolm/nanolm/tensor";
   * const backend = await initGpu();
   * const x = tensor(new Float32Array([1, 2, 3, 4]));
   * const kernel = {
   *   name: "double",
   *   workgroups: [1, 1, 1] as [number, number, number],
   *   source: `@group(0) @binding(0) var<storage, read_write> x: array<f32>;
   * @compute @workgroup_size(4) fn main(@builtin(local_invocation_id) lid: vec3u) { x[lid.x] = 2.0 * x[lid.x]; }`,
   * };
   * const twice = backend.record(() => backend.run(kernel, [x.buffer])); // nothing runs yet
   * backend.replay(twice, 3); // x *= 8
   * const got = [...new Float32Array(await backend.read(x.buffer, 16))];
   * if (got.join() !== "8,16,24,32") throw new Error(`got ${got}`);
   * twice.dispose();
   * ```
   */
  record(fn: () => void): Recording {
    if (this.#recording) throw new Error("record: a recording is already in progress (recordings do not nest)");
    const target: RecordingTarget = { dispatches: [], uniforms: [] };
    this.#recording = target;
    try {
      const result: unknown = fn();
      if (result instanceof Promise) throw new TypeError("record: the callback must be synchronous");
    } catch (e) {
      for (const b of target.uniforms) b.destroy();
      throw e;
    } finally {
      this.#recording = null;
    }
    const recording = new Recording(target.dispatches.map((d) => d.kernel.name));
    recorded.set(recording, target);
    return recording;
  }

  /**
   * Encodes a recording's dispatches `times` times (default once) after everything recorded so far, as
   * {@linkcode Backend.dispatch} would have, without building anything: no bind group, no check, no allocation.
   * The profiler sees each replayed dispatch under its kernel's name. Like `dispatch`, it submits in batches (of up
   * to 512 dispatches) and leaves the rest for the next {@linkcode Backend.flush}.
   */
  replay(recording: Recording, times = 1): void {
    if (!Number.isInteger(times) || times < 0) {
      throw new RangeError(`replay: times must be an integer >= 0, got ${times}`);
    }
    const target = recorded.get(recording);
    if (!target) throw new Error("replay: the recording was disposed (or not made by Backend.record)");
    if (this.#recording) throw new Error("replay: cannot replay while recording");
    const dispatches = target.dispatches;
    for (let t = 0; t < times; t++) {
      for (let i = 0; i < dispatches.length; i++) {
        const d = dispatches[i];
        this.#encode(d.kernel, d.bindGroup, d.x, d.y, d.z, d.cost);
      }
    }
  }

  #bindingError(kernel: string, binding: number, b: GpuBuffer): Error {
    const limit = this.#limits.maxStorageBufferBindingSize;
    const what = b.shape ? `a tensor of shape ${describe(b.shape, b.dtype)}` : "a buffer";
    return new RangeError(
      `${kernel}: binding ${binding} (${what}) is ${formatBytes(b.bytes)}, over this GPU's ` +
        `${formatBytes(limit)} storage binding limit (maxStorageBufferBindingSize); this op cannot split it: use ` +
        `smaller tensors (e.g. a smaller batch, or split the work into parts)`,
    );
  }

  /**
   * Compiles (once) and records a generated kernel: the usual pair of {@linkcode Backend.prepare} and
   * {@linkcode Backend.dispatch} with the kernel's own grid. A kernel whose threads would loop more often than this
   * adapter runs loops ({@linkcode BackendLimits.loopIterations}) throws instead of giving wrong values.
   */
  run(kernel: KernelSource, buffers: GpuBuffer[], uniforms?: ArrayBuffer): void {
    if (kernel.loops && kernel.loops.iterations > this.#limits.loopIterations) {
      throw new RangeError(
        `${kernel.name}: ${kernel.loops.of} would take ${kernel.loops.iterations} loop iterations in one GPU ` +
          `thread; this adapter (${this.info.description}) stops a shader's loops after ` +
          `${this.#limits.loopIterations} and would return wrong values. Use smaller dims or a hardware GPU`,
      );
    }
    this.dispatch(this.prepare(kernel.name, kernel.source), {
      buffers,
      workgroups: kernel.workgroups,
      uniforms,
      cost: kernel.cost,
    });
  }

  /** Submits recorded work to the GPU without waiting for it. */
  flush(): void {
    this.#submitRecorded();
  }

  /**
   * Submits the recorded work: {@linkcode Backend.flush}'s body, which the batching in `#encode` calls directly, so
   * that a caller's flush stays distinguishable from the batches (a test checks that no op flushes).
   */
  #submitRecorded(): void {
    this.#endPass();
    if (!this.#encoder) return;
    const encoder = this.#encoder;
    this.#encoder = null;
    const startProfileRead = this.#resolveProfile(encoder);
    this.#submit(encoder);
    startProfileRead?.();
  }

  /** Waits until the GPU has finished all submitted work (one round trip). */
  async sync(): Promise<void> {
    this.flush();
    const done = this.device.queue.onSubmittedWorkDone();
    this.#submitAt = DISPATCHES_AFTER_IDLE;
    await done;
  }

  /**
   * Runs `fn` with per-dispatch GPU timestamps and returns the time per kernel name (needs the adapter's
   * `timestamp-query` feature; without it, returns an empty list). Profiling adds a pass per dispatch, so total
   * time rises a little; the per-kernel split is what it is for.
   */
  async profile(fn: () => void | Promise<void>): Promise<KernelTiming[]> {
    return (await this.profileSpan(fn)).kernels;
  }

  /**
   * {@linkcode Backend.profile}, plus `spanMs`: the GPU time from the first profiled dispatch's start to the last
   * one's end. Unlike the per-kernel sum it includes the gaps between dependent dispatches (pipeline drains,
   * barriers), so it is the figure to compare with a wall-clock measurement of the same work (0 without
   * timestamps).
   *
   * @example
   * ```ts
   * import { initGpu } from "@nanolm/nanolm/gpu";
   * import { matmul, randn, tidy } from "@nanolm/nanolm/tensor";
   * const backend = await initGpu();
   * const a = randn([64, 64]), b = randn([64, 64]);
   * const { kernels, spanMs } = await backend.profileSpan(() => {
   *   for (let i = 0; i < 10; i++) tidy(() => void matmul(a, b));
   * });
   * if (backend.info.timestamps && !(spanMs > 0 && kernels.length > 0)) throw new Error("no timings");
   * ```
   */
  async profileSpan(fn: () => void | Promise<void>): Promise<{ kernels: KernelTiming[]; spanMs: number }> {
    const dispatches = await this.profileDispatches(fn);
    if (!this.info.timestamps) return { kernels: [], spanMs: 0 };
    const timings = new Map<string, KernelTiming>();
    let spanMs = 0;
    for (const d of dispatches) {
      const t = timings.get(d.name) ?? { name: d.name, count: 0, ms: 0 };
      t.count++;
      t.ms += d.gpuEndMs - d.gpuStartMs;
      timings.set(d.name, t);
      spanMs = Math.max(spanMs, d.gpuEndMs);
    }
    return { kernels: [...timings.values()].sort((a, b) => b.ms - a.ms), spanMs };
  }

  /**
   * Runs `fn` and returns every dispatch it issued (replays of a {@linkcode Recording} included), in order: kernel
   * name, predicted cost, the host times of its recording and submission, and its GPU start and end from
   * `timestamp-query` (NaN without the feature). While profiling, each dispatch gets a pass of its own; when not,
   * nothing of this is done or kept.
   *
   * @example
   * ```ts
   * import { initGpu } from "@nanolm/nanolm/gpu";
   * import { add, tensor, tidy } from "@nanolm/nanolm/tensor";
   * const backend = await initGpu();
   * const x = tensor([1, 2, 3, 4]);
   * const dispatches = await backend.profileDispatches(() => tidy(() => void add(x, x)));
   * const [d] = dispatches;
   * if (dispatches.length !== 1 || d.name !== "add" || d.cost?.flops !== 4) throw new Error(JSON.stringify(d));
   * if (backend.info.timestamps && !(d.gpuEndMs >= d.gpuStartMs)) throw new Error("no GPU times");
   * ```
   */
  async profileDispatches(fn: () => void | Promise<void>): Promise<DispatchProfile[]> {
    if (this.#profile) throw new Error("profileDispatches: a profile is already being taken (profiles do not nest)");
    this.flush();
    const timer = this.info.timestamps
      ? {
        querySet: this.device.createQuerySet({ type: "timestamp", count: MAX_PROFILED_DISPATCHES * 2 }),
        resolve: this.device.createBuffer({
          size: MAX_PROFILED_DISPATCHES * 16,
          usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
        }),
      }
      : null;
    const profile: ProfileState = { timer, dispatches: [], batch: [], reads: [] };
    this.#profile = profile;
    try {
      await fn();
    } finally {
      // Also after an error: what fn recorded is submitted with its timestamps resolved while the query set lives.
      this.flush();
      this.#profile = null;
      await Promise.allSettled(profile.reads);
      timer?.querySet.destroy();
      timer?.resolve.destroy();
    }
    await Promise.all(profile.reads);
    const stamped = profile.dispatches.filter((d) => d.begin >= 0n);
    const origin = stamped.reduce((min, d) => (d.begin < min ? d.begin : min), stamped[0]?.begin ?? 0n);
    const ms = (ticks: bigint) => (ticks < 0n ? NaN : Number(ticks - origin) / 1e6);
    return profile.dispatches.map((d) => ({
      name: d.name,
      ...(d.cost ? { cost: d.cost } : {}),
      hostMs: d.hostMs,
      submitMs: d.submitMs,
      gpuStartMs: ms(d.begin),
      gpuEndMs: ms(d.end),
    }));
  }

  /** Adds the resolve of this batch's timestamps to `encoder`; returns what starts their readback. */
  #resolveProfile(encoder: GPUCommandEncoder): (() => void) | null {
    const p = this.#profile;
    if (!p || p.batch.length === 0) return null;
    const batch = p.batch.splice(0), submitMs = performance.now();
    for (const d of batch) d.submitMs = submitMs;
    if (!p.timer) return null;
    const n = batch.length;
    encoder.resolveQuerySet(p.timer.querySet, 0, n * 2, p.timer.resolve, 0);
    const staging = this.device.createBuffer({
      size: n * 16,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    encoder.copyBufferToBuffer(p.timer.resolve, 0, staging, 0, n * 16);
    return () => {
      p.reads.push(
        staging.mapAsync(GPUMapMode.READ).then(() => {
          const stamps = new BigUint64Array(staging.getMappedRange());
          batch.forEach((d, i) => {
            d.begin = stamps[2 * i];
            d.end = stamps[2 * i + 1];
          });
          staging.unmap();
          staging.destroy();
        }),
      );
    };
  }

  #beginPass(): GPUComputePassEncoder {
    if (!this.#pass) {
      this.#encoder ??= this.device.createCommandEncoder();
      this.#pass = this.#encoder.beginComputePass();
    }
    return this.#pass;
  }

  #endPass(): void {
    if (this.#pass) {
      this.#pass.end();
      this.#pass = null;
    }
  }

  #submit(encoder: GPUCommandEncoder): void {
    this.device.queue.submit([encoder.finish()]);
    this.#submits++;
    this.#pending = 0;
    this.#submitAt = Math.min(2 * this.#submitAt, MAX_DISPATCHES_PER_SUBMIT);
    // Uniform buffers of submitted work can be destroyed now: WebGPU keeps them alive until the work finishes.
    if (this.#transient.length > 0) { for (const b of this.#transient.splice(0)) b.destroy(); }
  }
}

function describe(shape: readonly number[], dtype?: string): string {
  return `(${shape.join(", ")})${dtype ? ` ${dtype}` : ""}`;
}

let backendPromise: Promise<Backend> | null = null;
let backendInstance: Backend | null = null;

/**
 * Acquires the GPU once per process and returns the backend (later calls return the same one).
 *
 * @example
 * ```ts
 * import { initGpu } from "@nanolm/nanolm/gpu";
 * const backend = await initGpu();
 * if (backend !== await initGpu()) throw new Error("a second backend");
 * ```
 */
export function initGpu(): Promise<Backend> {
  backendPromise ??= requestGpu().then((ctx) => backendInstance = new Backend(ctx)).catch((e) => {
    backendPromise = null;
    throw e;
  });
  return backendPromise;
}

/**
 * The backend, for synchronous code after {@linkcode initGpu} has resolved.
 *
 * @example
 * ```ts
 * import { gpu, initGpu } from "@nanolm/nanolm/gpu";
 * await initGpu();
 * if (!(gpu().memory().inUseBytes >= 0)) throw new Error("no memory statistics");
 * ```
 */
export function gpu(): Backend {
  if (!backendInstance) {
    throw new Error("The GPU is not initialised: call `await initGpu()` once before creating tensors");
  }
  return backendInstance;
}
