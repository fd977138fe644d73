/**
 * Pieces shared by the kernel generators: launch grids and WGSL snippets.
 *
 * Every generator in this folder is a pure function from a shape-specialised description to WGSL source plus
 * its launch grid; sizes are baked in as constants so that the compiler can unroll and fold index math, and the
 * backend caches pipelines by source.
 *
 * Conventions of the generators:
 * - Names: `<op>Kernel`; an op with a backward pass has `<op>ForwardKernel` and `<op>BackwardKernel` (a backward
 *   of several kernels: `<op>Backward<Part>Kernel`).
 * - One argument: a spec object (an interface `<Op>Spec` beside the generator), so that call sites name every
 *   number they pass.
 * - Exported memoized ({@linkcode memoized}) over a private `generate...` function.
 * - Buffers declared with {@linkcode bindings}, in the order the caller binds them; the doc comment lists them.
 * - Each returns the {@linkcode KernelCost} of one launch, predicted from the spec alone.
 *
 * @module
 */

/**
 * What one launch of a kernel costs, predicted from the shapes in its spec: the figures a roofline puts a kernel's
 * measured time against. The counting follows `lib/nn/accounting.ts`:
 *
 * - FLOPs: a matmul of (m x k)(k x n) costs 2mnk; any other add, subtract, multiply, divide, compare, max or min
 *   costs 1, and so does a transcendental (exp, log, sqrt, an inverse square root, tanh), as in the accounting's
 *   softmax. Index arithmetic is not counted.
 * - Bytes: the least a launch must move to and from memory: every element it reads once and every element it writes
 *   once (4 bytes each, f32 or i32), as if all reuse hit on-chip memory or caches. A buffer read and then written
 *   in place counts twice.
 *
 * Where the work depends on values only the GPU sees (a decode step's cache length, the last part of a split
 * elementwise op), the prediction is for the largest launch the spec allows; each generator's doc says so.
 */
export interface KernelCost {
  /** Floating-point operations of one launch. */
  flops: number;
  /** Bytes read plus bytes written by one launch, at least. */
  bytes: number;
}

/** Bytes of an f32 or i32 element: every dtype the kernels use. */
export const ELEMENT_BYTES = 4;

/** A generated kernel: WGSL source, a name for profiles, its launch grid and its predicted cost. */
export interface KernelSource {
  /** Name shown in profiles. */
  name: string;
  /** WGSL source with entry point `main`. */
  source: string;
  /** Workgroups to dispatch. */
  workgroups: [number, number, number];
  /**
   * For kernels whose threads loop a number of times that grows with the shape: the most loop iterations one
   * thread runs (all loops together), and the dims that make it so, e.g. `"rows of (1, 3000000)"`. The backend
   * refuses such a kernel on adapters that cap loops (Mesa's llvmpipe stops them after 65,535 iterations).
   */
  loops?: { iterations: number; of: string };
  /**
   * FLOPs and bytes of one launch, predicted from the spec ({@linkcode KernelCost}); every generator in `kernels/`
   * sets it, and the backend's profiler reads it. Hand-written kernels may leave it out.
   */
  cost?: KernelCost;
}

/** How a kernel declares one buffer: its WGSL name, its element type (a struct for uniforms), and its access. */
export interface Binding {
  /** Variable name in the WGSL. */
  name: string;
  /** Element type of a storage array (`f32`, `vec4f`, `atomic<u32>`...), or the struct type of a uniform. */
  type: string;
  /** Read-only or read-write storage, or a uniform block. */
  access: "read" | "read_write" | "uniform";
}

/**
 * A read-only storage array binding.
 *
 * @example
 * ```ts
 * import { bindings, read } from "./common.ts";
 * if (bindings([read("x", "f32")]) !== "@group(0) @binding(0) var<storage, read> x: array<f32>;") throw new Error();
 * ```
 */
export function read(name: string, type: string): Binding {
  return { name, type, access: "read" };
}

/**
 * A read-write storage array binding.
 *
 * @example
 * ```ts
 * import { bindings, readWrite } from "./common.ts";
 * const wgsl = bindings([readWrite("out", "vec4f")], 2);
 * if (wgsl !== "@group(0) @binding(2) var<storage, read_write> out: array<vec4f>;") throw new Error(wgsl);
 * ```
 */
export function readWrite(name: string, type: string): Binding {
  return { name, type, access: "read_write" };
}

/**
 * A uniform block binding of struct `type` (declared by the kernel).
 *
 * @example
 * ```ts
 * import { bindings, uniform } from "./common.ts";
 * if (bindings([uniform("s", "Step")]) !== "@group(0) @binding(0) var<uniform> s: Step;") throw new Error();
 * ```
 */
export function uniform(name: string, type: string): Binding {
  return { name, type, access: "uniform" };
}

/**
 * The WGSL declarations of a kernel's buffers, one line each, numbered from `first` in list order: the order in
 * which the caller passes the buffers.
 *
 * @example
 * ```ts
 * import { bindings, read, readWrite } from "./common.ts";
 * const wgsl = bindings([read("x", "f32"), readWrite("out", "f32")]);
 * if (wgsl.split("\n")[1] !== "@group(0) @binding(1) var<storage, read_write> out: array<f32>;") throw new Error(wgsl);
 * ```
 */
export function bindings(list: readonly Binding[], first = 0): string {
  return list.map((b, i) => {
    const decl = b.access === "uniform"
      ? `var<uniform> ${b.name}: ${b.type}`
      : `var<storage, ${b.access}> ${b.name}: array<${b.type}>`;
    return `@group(0) @binding(${first + i}) ${decl};`;
  }).join("\n");
}

/** The largest finite f32. */
const F32_MAX = 3.4028234663852886e38;

/** WebGPU guarantees at least this many workgroups per grid dimension. */
export const MAX_GROUPS_PER_DIM = 65535;

/**
 * A 2-D grid of `groups` workgroups (folding into y past 65535), with the WGSL expression of the flat workgroup
 * index. Kernels must ignore workgroups whose flat index is >= `groups`.
 *
 * @example
 * ```ts
 * import { flatGrid } from "./common.ts";
 * const grid = flatGrid(100_000); // past 65,535: folded into two rows
 * if (grid.workgroups.join() !== "50000,2,1" || grid.index !== "(wid.x + wid.y * 50000u)") throw new Error();
 * ```
 */
export function flatGrid(groups: number): { workgroups: [number, number, number]; index: string } {
  if (groups <= MAX_GROUPS_PER_DIM) return { workgroups: [Math.max(groups, 1), 1, 1], index: "wid.x" };
  const y = Math.ceil(groups / MAX_GROUPS_PER_DIM);
  const x = Math.ceil(groups / y);
  return { workgroups: [x, y, 1], index: `(wid.x + wid.y * ${x}u)` };
}

/**
 * A grid of `dims[0] x dims[1] x dims[2]` workgroups (missing dims are 1) with the WGSL expression of each
 * workgroup's coordinate along every dim. Within the per-dimension limit it is the plain grid (`wid.x`, `wid.y`,
 * `wid.z`, no guard). Past it, the whole grid is folded into a flat one ({@linkcode flatGrid}) and the coordinates
 * are divided out of the flat index; `guard` (the first statement of `main`, in uniform control flow) then returns
 * from the workgroups past the end.
 *
 * @example
 * ```ts
 * import { foldGrid } from "./common.ts";
 * if (foldGrid([2, 8]).workgroups.join() !== "2,8,1") throw new Error("within the limit: the plain grid");
 * if (foldGrid([2, 70_000]).workgroups.join() !== "46667,3,1") throw new Error("past it: folded flat");
 * ```
 */
export function foldGrid(dims: readonly number[]): {
  workgroups: [number, number, number];
  index: [string, string, string];
  guard: string;
} {
  const [x, y = 1, z = 1] = dims;
  if (x <= MAX_GROUPS_PER_DIM && y <= MAX_GROUPS_PER_DIM && z <= MAX_GROUPS_PER_DIM) {
    return { workgroups: [x, y, z], index: ["wid.x", "wid.y", "wid.z"], guard: "" };
  }
  const total = x * y * z;
  if (total > MAX_GROUPS_PER_DIM ** 2) {
    throw new RangeError(`A grid of ${x} x ${y} x ${z} workgroups is more than one dispatch can launch`);
  }
  const flat = flatGrid(total);
  return {
    workgroups: flat.workgroups,
    index: [`(wgFlat % ${x}u)`, `((wgFlat / ${x}u) % ${y}u)`, `(wgFlat / ${x * y}u)`],
    guard: `let wgFlat = ${flat.index};\n  if (wgFlat >= ${total}u) { return; }`,
  };
}

/**
 * Formats a number as a WGSL f32 literal. Values beyond the f32 range become the value float32 rounding gives
 * (the largest float or an infinity), as on upload: WGSL rejects literals that f32 cannot represent.
 *
 * @example
 * ```ts
 * import { f32Literal } from "./common.ts";
 * const literals = [f32Literal(1), f32Literal(0.5), f32Literal(-Infinity)].join(" ");
 * if (literals !== "1.0 f32(0.5) bitcast<f32>(0xff800000u)") throw new Error(literals);
 * ```
 */
export function f32Literal(x: number): string {
  if (Number.isNaN(x)) throw new RangeError("NaN cannot be a WGSL literal");
  if (Math.abs(x) > F32_MAX) x = Math.fround(x);
  if (x === Infinity) return "bitcast<f32>(0x7f800000u)";
  if (x === -Infinity) return "bitcast<f32>(0xff800000u)";
  const s = String(x);
  return /[.e]/.test(s) ? `f32(${s})` : `${s}.0`;
}

/**
 * WGSL that reduces `value` (an f32 expression per thread) across a workgroup of `size` threads with `op`
 * ("sum" or "max") through workgroup memory `scratch` (declared by the caller as `array<f32, size>`), leaving the
 * result in `let <out>` for every thread.
 *
 * @example
 * ```ts
 * import { workgroupReduce } from "./common.ts";
 * const wgsl = workgroupReduce("sum", "v", "total", 256); // needs `var<workgroup> red: array<f32, 256>;`
 * if (!wgsl.endsWith("let total = red[0];\n  workgroupBarrier();")) throw new Error(wgsl);
 * ```
 */
export function workgroupReduce(op: "sum" | "max", value: string, out: string, size: number, scratch = "red"): string {
  const combine = op === "sum" ? (a: string, b: string) => `${a} + ${b}` : (a: string, b: string) => `max(${a}, ${b})`;
  const lines = [`  ${scratch}[lid.x] = ${value};`, "  workgroupBarrier();"];
  for (let s = size / 2; s >= 1; s /= 2) {
    lines.push(
      `  if (lid.x < ${s}u) { ${scratch}[lid.x] = ${combine(`${scratch}[lid.x]`, `${scratch}[lid.x + ${s}u]`)}; }`,
      "  workgroupBarrier();",
    );
  }
  lines.push(`  let ${out} = ${scratch}[0];`, "  workgroupBarrier();");
  return lines.join("\n");
}

/**
 * Caches a kernel generator by its arguments (as JSON). Generating the source is not free: the unrolled matmul is
 * about 19 KB of WGSL and took 81 us to build, which over the ~90 matmuls of a training step was 7 ms of CPU time a
 * step on the H100 (the GPU waited for it). With the cache, an op pays one small JSON key.
 *
 * @example
 * ```ts
 * import { memoized } from "./common.ts";
 * let calls = 0;
 * const gen = memoized((n: number) => ({ name: "k", source: `// ${n} ${++calls}`, workgroups: [1, 1, 1] }));
 * gen(3);
 * if (gen(3).source !== "// 3 1" || calls !== 1) throw new Error("generated twice");
 * ```
 */
export function memoized<A extends unknown[]>(generate: (...args: A) => KernelSource): (...args: A) => KernelSource {
  const cache = new Map<string, KernelSource>();
  return (...args: A): KernelSource => {
    const key = JSON.stringify(args);
    let kernel = cache.get(key);
    if (!kernel) {
      kernel = generate(...args);
      cache.set(key, kernel);
    }
    return kernel;
  };
}

/**
 * The entry point of a kernel that gives each row one workgroup of `size` threads: the `red` scratch array that
 * {@linkcode workgroupReduce} uses, `main` with `wid`/`lid`, and `row`, returning at once past the last row (uniform
 * per workgroup, so later barriers stay in uniform control flow). The caller closes the function.
 *
 * @example
 * ```ts
 * import { rowKernelEntry } from "./common.ts";
 * const entry = rowKernelEntry(10, 64); // the caller appends its body and `}` to entry.head
 * if (entry.workgroups.join() !== "10,1,1") throw new Error(`${entry.workgroups}`); // a workgroup a row
 * ```
 */
export function rowKernelEntry(rows: number, size: number): { workgroups: [number, number, number]; head: string } {
  const grid = flatGrid(rows);
  return {
    workgroups: grid.workgroups,
    head: `var<workgroup> red: array<f32, ${size}>;
@compute @workgroup_size(${size})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = ${grid.index};
  if (row >= ${rows}u) { return; }`,
  };
}
