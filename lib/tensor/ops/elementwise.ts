/**
 * Elementwise ops with broadcasting. Each op is one row of a table: its WGSL expression and, next to it, the WGSL
 * expressions of its gradients. Forward and backward both run through the one generic elementwise kernel
 * generator; un-broadcasting of gradients happens once, in autograd.
 *
 * @module
 */
import { elementwiseKernel } from "../../../kernels/elementwise.ts";
import { f32Literal } from "../../../kernels/common.ts";
import { formatBytes, gpu, type GpuBuffer } from "../../gpu/backend.ts";
import { record } from "../graph.ts";
import { broadcastShapes, fmt } from "../shape.ts";
import { type DType, empty, type Tensor } from "../tensor.ts";

/**
 * Runs a generic elementwise kernel: `expr` is WGSL over `v0, v1, ...` (the inputs, broadcast to a common shape).
 * No autograd; the ops below add it.
 *
 * @example
 * ```ts
 * import { initGpu, mapElements, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const y = await mapElements("axpy", [tensor([1, 2, 3]), tensor([10])], "v0 * 2.0 + v1").data();
 * if (y.join() !== "12,14,16") throw new Error(`${y}`);
 * ```
 */
export function mapElements(name: string, inputs: Tensor[], expr: string, outDtype: DType = "f32"): Tensor {
  const shape = broadcastShapes(name, ...inputs.map((t) => t.shape));
  const out = empty(shape, outDtype);
  if (out.size > 0) runElementwise(name, inputs, out, expr);
  return out;
}

/** Writes `expr` of `inputs` into `out`, a binding-sized part at a time when `out` is over the binding limit. */
function runElementwise(name: string, inputs: Tensor[], out: Tensor, expr: string): void {
  const backend = gpu();
  const spec = {
    name,
    outShape: out.shape,
    outDtype: out.dtype,
    inputs: inputs.map((t) => ({ shape: t.shape, dtype: t.dtype })),
    expr,
  };
  // Every dtype has 4-byte elements, so no input is larger than the output.
  const limit = backend.limits.maxStorageBufferBindingSize;
  if (out.size * 4 <= limit) {
    backend.run(elementwiseKernel(spec), [...inputs.map((t) => t.buffer), out.buffer]);
    return;
  }
  // Parts of a whole number of aligned bindings; inputs of the output's size are split alike, smaller
  // (broadcast) ones bound whole, which needs them to fit.
  const align = backend.device.limits.minStorageBufferOffsetAlignment / 4;
  const part = Math.floor(limit / 4 / align) * align;
  for (const t of inputs) {
    if (t.size !== out.size && t.size * 4 > limit) {
      throw new RangeError(
        `${name}: input ${t.describe()} is ${formatBytes(t.size * 4)}, over this GPU's ${formatBytes(limit)} ` +
          `storage binding limit (maxStorageBufferBindingSize), and broadcast to ${fmt(out.shape)} it cannot be ` +
          `split into parts; use smaller tensors`,
      );
    }
  }
  const k = elementwiseKernel({ ...spec, part });
  for (let first = 0; first < out.size; first += part) {
    const count = Math.min(part, out.size - first);
    const range = (b: GpuBuffer) => backend.range(b, first * 4, count * 4);
    const buffers = inputs.map((t) => t.size === out.size ? range(t.buffer) : t.buffer);
    backend.run(k, [...buffers, range(out.buffer)], new Uint32Array([first, count]).buffer);
  }
}

function requireFloat(op: string, ...ts: Tensor[]): void {
  for (const t of ts) {
    if (t.dtype !== "f32") throw new TypeError(`${op} needs f32 tensors, got ${t.describe()}`);
  }
}

// ---- Unary ops ------------------------------------------------------------------------------------------------

/** Names of the unary ops. */
export type UnaryOp =
  | "neg"
  | "exp"
  | "log"
  | "sqrt"
  | "rsqrt"
  | "square"
  | "abs"
  | "relu"
  | "sigmoid"
  | "silu"
  | "tanh";

/** Each unary op: forward `y = f(x)` and `dx` as a function of `x`, `y`, `dy` (WGSL expressions). */
const unaryOps: Record<
  UnaryOp,
  { forward: (x: string) => string; backward: (x: string, y: string, dy: string) => string }
> = {
  neg: { forward: (x) => `-${x}`, backward: (_x, _y, dy) => `-${dy}` },
  exp: { forward: (x) => `exp(${x})`, backward: (_x, y, dy) => `${dy} * ${y}` },
  log: { forward: (x) => `log(${x})`, backward: (x, _y, dy) => `${dy} / ${x}` },
  sqrt: { forward: (x) => `sqrt(${x})`, backward: (_x, y, dy) => `${dy} * 0.5 / ${y}` },
  rsqrt: { forward: (x) => `inverseSqrt(${x})`, backward: (_x, y, dy) => `${dy} * -0.5 * ${y} * ${y} * ${y}` },
  square: { forward: (x) => `${x} * ${x}`, backward: (x, _y, dy) => `${dy} * 2.0 * ${x}` },
  abs: { forward: (x) => `abs(${x})`, backward: (x, _y, dy) => `${dy} * sign(${x})` },
  relu: { forward: (x) => `max(${x}, 0.0)`, backward: (x, _y, dy) => `select(0.0, ${dy}, ${x} > 0.0)` },
  sigmoid: { forward: (x) => `1.0 / (1.0 + exp(-${x}))`, backward: (_x, y, dy) => `${dy} * ${y} * (1.0 - ${y})` },
  silu: {
    forward: (x) => `${x} / (1.0 + exp(-${x}))`,
    backward: (x, _y, dy) => `${dy} * (1.0 / (1.0 + exp(-${x}))) * (1.0 + ${x} * (1.0 - 1.0 / (1.0 + exp(-${x}))))`,
  },
  tanh: { forward: (x) => `tanh(${x})`, backward: (_x, y, dy) => `${dy} * (1.0 - ${y} * ${y})` },
};

function unary(op: UnaryOp, x: Tensor): Tensor {
  requireFloat(op, x);
  const def = unaryOps[op];
  const y = mapElements(op, [x], def.forward("v0"));
  return record(y, op, [x], (dy) => [mapElements(`${op}_backward`, [x, y, dy], def.backward("v0", "v1", "v2"))]);
}

/**
 * `-x`.
 *
 * @example
 * ```ts
 * import { initGpu, neg, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const y = await neg(tensor([1, -2])).data();
 * if (y.join() !== "-1,2") throw new Error(`neg: ${y}`);
 * ```
 */
export const neg = (x: Tensor): Tensor => unary("neg", x);

/**
 * `e^x`.
 *
 * @example
 * ```ts
 * import { initGpu, exp, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const y = await exp(tensor([0, 1])).data();
 * if (y.some((v, i) => Math.abs(v - [1, Math.E][i]) > 1e-5)) throw new Error(`exp: ${y}`);
 * ```
 */
export const exp = (x: Tensor): Tensor => unary("exp", x);

/**
 * Natural logarithm.
 *
 * @example
 * ```ts
 * import { initGpu, log, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const y = await log(tensor([1, Math.E])).data();
 * if (y.some((v, i) => Math.abs(v - [0, 1][i]) > 1e-5)) throw new Error(`log: ${y}`);
 * ```
 */
export const log = (x: Tensor): Tensor => unary("log", x);

/**
 * Square root.
 *
 * @example
 * ```ts
 * import { initGpu, sqrt, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const y = await sqrt(tensor([4, 2])).data();
 * if (y.some((v, i) => Math.abs(v - [2, Math.SQRT2][i]) > 1e-5)) throw new Error(`sqrt: ${y}`);
 * ```
 */
export const sqrt = (x: Tensor): Tensor => unary("sqrt", x);

/**
 * `1 / sqrt(x)`.
 *
 * @example
 * ```ts
 * import { initGpu, rsqrt, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const y = await rsqrt(tensor([4])).data();
 * if (y.some((v, i) => Math.abs(v - [0.5][i]) > 1e-5)) throw new Error(`rsqrt: ${y}`);
 * ```
 */
export const rsqrt = (x: Tensor): Tensor => unary("rsqrt", x);

/**
 * `x * x`.
 *
 * @example
 * ```ts
 * import { initGpu, square, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const y = await square(tensor([3, -2])).data();
 * if (y.join() !== "9,4") throw new Error(`square: ${y}`);
 * ```
 */
export const square = (x: Tensor): Tensor => unary("square", x);

/**
 * `|x|`.
 *
 * @example
 * ```ts
 * import { initGpu, abs, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const y = await abs(tensor([-3, 2])).data();
 * if (y.join() !== "3,2") throw new Error(`abs: ${y}`);
 * ```
 */
export const abs = (x: Tensor): Tensor => unary("abs", x);

/**
 * `max(x, 0)`.
 *
 * @example
 * ```ts
 * import { initGpu, relu, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const y = await relu(tensor([-1, 2])).data();
 * if (y.join() !== "0,2") throw new Error(`relu: ${y}`);
 * ```
 */
export const relu = (x: Tensor): Tensor => unary("relu", x);

/**
 * `1 / (1 + e^-x)`.
 *
 * @example
 * ```ts
 * import { initGpu, sigmoid, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const y = await sigmoid(tensor([0, 2])).data();
 * if (y.some((v, i) => Math.abs(v - [0.5, 1 / (1 + Math.exp(-2))][i]) > 1e-5)) throw new Error(`sigmoid: ${y}`);
 * ```
 */
export const sigmoid = (x: Tensor): Tensor => unary("sigmoid", x);

/**
 * `x * sigmoid(x)` (SiLU / swish).
 *
 * @example
 * ```ts
 * import { initGpu, silu, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const y = await silu(tensor([0, 2])).data();
 * if (y.some((v, i) => Math.abs(v - [0, 2 / (1 + Math.exp(-2))][i]) > 1e-5)) throw new Error(`silu: ${y}`);
 * ```
 */
export const silu = (x: Tensor): Tensor => unary("silu", x);

/**
 * Hyperbolic tangent.
 *
 * @example
 * ```ts
 * import { initGpu, tanh, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const y = await tanh(tensor([0, 1])).data();
 * if (y.some((v, i) => Math.abs(v - [0, Math.tanh(1)][i]) > 1e-5)) throw new Error(`tanh: ${y}`);
 * ```
 */
export const tanh = (x: Tensor): Tensor => unary("tanh", x);

// ---- Binary ops -----------------------------------------------------------------------------------------------

/** The smallest normal f32, as a WGSL literal. */
const TINY = "f32(1.1754943508222875e-38)";

/** Names of the binary ops. */
export type BinaryOp = "add" | "sub" | "mul" | "div" | "pow" | "maximum" | "minimum";

/**
 * Each binary op: forward `y = f(a, b)` and the gradients for `a` and `b` as functions of `a`, `b`, `y`, `dy`
 * (WGSL expressions, evaluated at the broadcast shape; autograd sums them back to each input's shape).
 */
const binaryOps: Record<BinaryOp, {
  forward: (a: string, b: string) => string;
  backward: [
    (a: string, b: string, y: string, dy: string) => string,
    (a: string, b: string, y: string, dy: string) => string,
  ];
}> = {
  add: { forward: (a, b) => `${a} + ${b}`, backward: [(_a, _b, _y, dy) => dy, (_a, _b, _y, dy) => dy] },
  sub: { forward: (a, b) => `${a} - ${b}`, backward: [(_a, _b, _y, dy) => dy, (_a, _b, _y, dy) => `-${dy}`] },
  mul: {
    forward: (a, b) => `${a} * ${b}`,
    backward: [(_a, b, _y, dy) => `${dy} * ${b}`, (a, _b, _y, dy) => `${dy} * ${a}`],
  },
  div: {
    forward: (a, b) => `${a} / ${b}`,
    backward: [(_a, b, _y, dy) => `${dy} / ${b}`, (_a, b, y, dy) => `-${dy} * ${y} / ${b}`],
  },
  pow: {
    // pow() in WGSL is undefined for negative bases; use exp(b*log|a|) with the sign fixed for integer b. The
    // logs' arguments are clamped to the smallest normal float, which only matters in the branches the selects
    // discard, and keeps a number operand of 0 or less from constant-folding to an invalid log.
    forward: (a, b) =>
      `select(select(1.0, -1.0, ${a} < 0.0 && fract(${b} * 0.5) != 0.0) * exp(${b} * log(max(abs(${a}), ${TINY}))), ` +
      `select(select(0.0, ${f32Literal(Infinity)}, ${b} < 0.0), 1.0, ${b} == 0.0), ${a} == 0.0)`,
    backward: [
      (a, b, y, dy) => `select(${dy} * ${b} * ${y} / ${a}, select(0.0, ${dy}, ${b} == 1.0), ${a} == 0.0)`,
      (a, _b, y, dy) => `select(0.0, ${dy} * ${y} * log(max(${a}, ${TINY})), ${a} > 0.0)`,
    ],
  },
  maximum: {
    forward: (a, b) => `max(${a}, ${b})`,
    backward: [
      (a, b, _y, dy) => `select(0.0, ${dy}, ${a} >= ${b})`,
      (a, b, _y, dy) => `select(0.0, ${dy}, ${b} > ${a})`,
    ],
  },
  minimum: {
    forward: (a, b) => `min(${a}, ${b})`,
    backward: [
      (a, b, _y, dy) => `select(0.0, ${dy}, ${a} <= ${b})`,
      (a, b, _y, dy) => `select(0.0, ${dy}, ${b} < ${a})`,
    ],
  },
};

function binary(op: BinaryOp, a: Tensor | number, b: Tensor | number): Tensor {
  const def = binaryOps[op];
  if (typeof a === "number" && typeof b === "number") {
    throw new TypeError(`${op} needs at least one tensor, got two numbers`);
  }
  // A number operand is baked into the kernel as a literal (no upload, no GPU round trip).
  const inputs: Tensor[] = [];
  const ref = (x: Tensor | number): string => {
    if (typeof x === "number") return f32Literal(x);
    inputs.push(x);
    return `v${inputs.length - 1}`;
  };
  const ra = ref(a), rb = ref(b);
  requireFloat(op, ...inputs);
  const y = mapElements(op, inputs, def.forward(ra, rb));
  return record(y, op, inputs, (dy) => {
    const all = [...inputs, y, dy];
    const vy = `v${inputs.length}`, vdy = `v${inputs.length + 1}`;
    const grads: Tensor[] = [];
    [a, b].forEach((x, side) => {
      if (typeof x === "number") return;
      const expr = def.backward[side](ra, rb, vy, vdy);
      // A gradient that is dy itself (add, sub's left side) needs no kernel: autograd gives each owner a view.
      grads.push(expr === vdy ? dy : mapElements(`${op}_backward${side}`, all, expr));
    });
    return grads;
  });
}

/**
 * `a + b` with broadcasting; either may be a number.
 *
 * @example
 * ```ts
 * import { initGpu, add, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const y = await add(tensor([[1], [2]]), tensor([10, 20])).data();
 * if (y.join() !== "11,21,12,22") throw new Error(`add: ${y}`);
 * ```
 */
export const add = (a: Tensor | number, b: Tensor | number): Tensor => binary("add", a, b);

/**
 * `a - b` with broadcasting; either may be a number.
 *
 * @example
 * ```ts
 * import { initGpu, sub, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const y = await sub(1, tensor([1, 3])).data();
 * if (y.join() !== "0,-2") throw new Error(`sub: ${y}`);
 * ```
 */
export const sub = (a: Tensor | number, b: Tensor | number): Tensor => binary("sub", a, b);

/**
 * `a * b` with broadcasting; either may be a number.
 *
 * @example
 * ```ts
 * import { initGpu, mul, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const y = await mul(tensor([2, 4]), 0.5).data();
 * if (y.join() !== "1,2") throw new Error(`mul: ${y}`);
 * ```
 */
export const mul = (a: Tensor | number, b: Tensor | number): Tensor => binary("mul", a, b);

/**
 * `a / b` with broadcasting; either may be a number.
 *
 * @example
 * ```ts
 * import { initGpu, div, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const y = await div(tensor([1, 3]), tensor([4])).data();
 * if (y.some((v, i) => Math.abs(v - [0.25, 0.75][i]) > 1e-5)) throw new Error(`div: ${y}`);
 * ```
 */
export const div = (a: Tensor | number, b: Tensor | number): Tensor => binary("div", a, b);

/**
 * `a ** b` with broadcasting (negative bases allowed for integer exponents); either may be a number.
 *
 * @example
 * ```ts
 * import { initGpu, pow, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const y = await pow(tensor([-2, 3]), 3).data();
 * if (y.some((v, i) => Math.abs(v / [-8, 27][i] - 1) > 1e-5)) throw new Error(`pow: ${y}`);
 * ```
 */
export const pow = (a: Tensor | number, b: Tensor | number): Tensor => binary("pow", a, b);

/**
 * Elementwise maximum with broadcasting; either may be a number.
 *
 * @example
 * ```ts
 * import { initGpu, maximum, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const y = await maximum(tensor([-1, 2]), 0).data();
 * if (y.join() !== "0,2") throw new Error(`maximum: ${y}`);
 * ```
 */
export const maximum = (a: Tensor | number, b: Tensor | number): Tensor => binary("maximum", a, b);

/**
 * Elementwise minimum with broadcasting; either may be a number.
 *
 * @example
 * ```ts
 * import { initGpu, minimum, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const y = await minimum(tensor([-1, 2]), 1).data();
 * if (y.join() !== "-1,1") throw new Error(`minimum: ${y}`);
 * ```
 */
export const minimum = (a: Tensor | number, b: Tensor | number): Tensor => binary("minimum", a, b);

// ---- Comparisons and selection --------------------------------------------------------------------------------

/** Names of the comparisons; each gives 1.0 where true and 0.0 elsewhere (no gradient). */
export type CompareOp = "eq" | "ne" | "lt" | "le" | "gt" | "ge";

const compareOps: Record<CompareOp, string> = { eq: "==", ne: "!=", lt: "<", le: "<=", gt: ">", ge: ">=" };

/**
 * Compares elementwise with broadcasting; returns an f32 mask of 0/1.
 *
 * @example
 * ```ts
 * import { compare, initGpu, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const mask = await compare("gt", tensor([1, 5]), 2).data();
 * if (mask.join() !== "0,1") throw new Error(`${mask}`);
 * ```
 */
export function compare(op: CompareOp, a: Tensor | number, b: Tensor | number): Tensor {
  const inputs: Tensor[] = [];
  const ref = (x: Tensor | number): string => {
    if (typeof x === "number") return f32Literal(x);
    inputs.push(x);
    return x.dtype === "i32" ? `f32(v${inputs.length - 1})` : `v${inputs.length - 1}`;
  };
  if (typeof a === "number" && typeof b === "number") throw new TypeError(`${op} needs at least one tensor`);
  const expr = `select(0.0, 1.0, ${ref(a)} ${compareOps[op]} ${ref(b)})`;
  return mapElements(op, inputs, expr);
}

/**
 * `cond ? a : b` elementwise, with broadcasting; `cond` is a mask (nonzero = true). Gradients flow to `a` and
 * `b`, not to the mask.
 *
 * @example
 * ```ts
 * import { compare, initGpu, tensor, where } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const x = tensor([-1, 2]);
 * const y = await where(compare("gt", x, 0), x, 0).data(); // relu
 * if (y.join() !== "0,2") throw new Error(`${y}`);
 * ```
 */
export function where(cond: Tensor, a: Tensor | number, b: Tensor | number): Tensor {
  const inputs: Tensor[] = [cond];
  const ref = (x: Tensor | number): string => {
    if (typeof x === "number") return f32Literal(x);
    inputs.push(x);
    return `v${inputs.length - 1}`;
  };
  const c = cond.dtype === "i32" ? "v0 != 0" : "v0 != 0.0";
  const ra = ref(a), rb = ref(b);
  requireFloat("where", ...inputs.slice(1));
  const y = mapElements("where", inputs, `select(${rb}, ${ra}, ${c})`);
  return record(y, "where", inputs, (dy) => {
    const all = [...inputs, dy];
    const vdy = `v${inputs.length}`;
    const grads: (Tensor | null)[] = [null];
    if (typeof a !== "number") grads.push(mapElements("where_backward0", all, `select(0.0, ${vdy}, ${c})`));
    if (typeof b !== "number") grads.push(mapElements("where_backward1", all, `select(${vdy}, 0.0, ${c})`));
    return grads;
  });
}

/**
 * A new tensor with the same values (and a gradient path).
 *
 * @example
 * ```ts
 * import { copy, initGpu, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const x = tensor([1, 2]), y = copy(x);
 * if (y.storage === x.storage || (await y.data()).join() !== "1,2") throw new Error("not a copy");
 * ```
 */
export function copy(x: Tensor): Tensor {
  const y = mapElements("copy", [x], "v0", x.dtype);
  return record(y, "copy", [x], (dy) => [dy]);
}

/**
 * Converts between f32 and i32, truncating toward zero. No gradient. f32 values outside the i32 range saturate to
 * -2^31 or 2^31 - 128 (the largest f32 below 2^31), and NaN becomes an unspecified integer; i32 values beyond 2^24
 * round to the nearest f32.
 *
 * @example
 * ```ts
 * import { cast, initGpu, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const y = await cast(tensor([2.7, -2.7, 3e9]), "i32").data();
 * if (y.join() !== "2,-2,2147483520") throw new Error(`${y}`);
 * ```
 */
export function cast(x: Tensor, dtype: DType): Tensor {
  // WGSL's own float-to-int conversion of out-of-range values has changed between drafts: clamp explicitly.
  const expr = dtype === "i32" && x.dtype === "f32" ? "i32(clamp(v0, -2147483648.0, 2147483520.0))" : `${dtype}(v0)`;
  return mapElements("cast", [x], expr, dtype);
}

/**
 * A tensor of `value` with `x`'s shape and dtype.
 *
 * @example
 * ```ts
 * import { fullLike, initGpu, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const y = fullLike(tensor(new Int32Array([5, 6])), 3);
 * if (y.dtype !== "i32" || (await y.data()).join() !== "3,3") throw new Error(y.describe());
 * ```
 */
export function fullLike(x: Tensor, value: number): Tensor {
  return fill(x.shape, value, x.dtype);
}

/**
 * A tensor of `shape` filled with `value` (one kernel, no upload).
 *
 * @example
 * ```ts
 * import { fill } from "./elementwise.ts";
 * import { initGpu } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * if ((await fill([2, 2], 7).data()).join() !== "7,7,7,7") throw new Error("not sevens");
 * ```
 */
export function fill(shape: readonly number[], value: number, dtype: DType = "f32"): Tensor {
  if (dtype === "i32" && !(Number.isInteger(value) && value >= -(2 ** 31) && value < 2 ** 31)) {
    throw new RangeError(`fill: ${value} is not an i32 value (an integer in [-2^31, 2^31)), for shape ${fmt(shape)}`);
  }
  const out = empty(shape, dtype);
  if (out.size > 0) runElementwise("fill", [], out, dtype === "i32" ? `${value}` : f32Literal(value));
  return out;
}
