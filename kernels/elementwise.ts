/**
 * One generated kernel for every elementwise op: any number of inputs broadcast to the output shape, combined
 * by a WGSL expression. Broadcasting is resolved at generation time (strides of broadcast dims are zero and
 * folded away), so a same-shape op compiles to a straight `out[i] = f(a[i], b[i])`.
 *
 * @module
 */
import {
  bindings,
  ELEMENT_BYTES,
  flatGrid,
  type KernelCost,
  type KernelSource,
  read,
  readWrite,
  uniform,
} from "./common.ts";

/** WGSL element type of each dtype. */
export const wgslType = { f32: "f32", i32: "i32" } as const;

/** An elementwise kernel's description. */
export interface ElementwiseSpec {
  /** Name for profiles. */
  name: string;
  /** Output shape. */
  outShape: readonly number[];
  /** Output dtype. */
  outDtype: "f32" | "i32";
  /** Inputs: their shapes (broadcastable to outShape, aligned right) and dtypes. */
  inputs: { shape: readonly number[]; dtype: "f32" | "i32" }[];
  /** The output value as a WGSL expression of the input values `v0, v1, ...`. */
  expr: string;
  /**
   * Run over a part of the output at a time, of at most this many elements: the output, and the inputs of its
   * size, are bound as the part's ranges; smaller (broadcast) inputs are bound whole. A uniform block after the
   * buffers holds the part's first element and its length, as two u32.
   */
  part?: number;
}

const WG = 256;

/** WGSL builtins that compute (a cast, `select` or `bitcast` moves a value and costs nothing). */
const MATH_BUILTINS =
  /\b(exp|exp2|log|log2|sqrt|inverseSqrt|tanh|sin|cos|abs|sign|max|min|fract|floor|ceil|round|trunc|pow)\s*\(/g;

/**
 * FLOPs of one evaluation of a WGSL expression: one per arithmetic operator (a negation included), per comparison
 * and per math builtin call (`exp`, `max`, ...; `clamp` counts 2). Numeric literals such as `1e-7` and type
 * parameters such as `bitcast<f32>` are not operators.
 *
 * @example
 * ```ts
 * import { expressionFlops } from "./elementwise.ts";
 * if (expressionFlops("v0 / (1.0 + exp(-v0))") !== 4) throw new Error("SiLU: a negation, exp, add and divide");
 * if (expressionFlops("select(0.0, 1.0, v0 > f32(1e-7))") !== 1) throw new Error("one compare");
 * ```
 */
export function expressionFlops(expr: string): number {
  const code = expr
    .replace(/\b(bitcast|vec[234]|array)<[\w, ]+>/g, "$1") // type parameters are not comparisons
    .replace(/(^|[(,*/+<>=-]\s*)-(?=\s*\.?\d)/g, "$1") // the sign of a negative literal
    .replace(/\b\d+(\.\d*)?([eE][+-]?\d+)?[fiu]?\b|\.\d+([eE][+-]?\d+)?/g, "0");
  const operators = code.match(/<=|>=|==|!=|&&|\|\||[-+*/<>]/g) ?? [];
  const arithmetic = operators.filter((op) => op !== "&&" && op !== "||").length;
  const calls = (code.match(MATH_BUILTINS) ?? []).length + 2 * (code.match(/\bclamp\s*\(/g) ?? []).length;
  return arithmetic + calls;
}

/**
 * The cost of one launch: `expr` per output element; every input read once at its own size (a broadcast one is
 * read whole), the output written once. In parts, a launch covers `part` elements (the last part may be shorter).
 */
function elementwiseCost(spec: ElementwiseSpec, n: number): KernelCost {
  const count = Math.min(spec.part ?? n, n);
  const inputs = spec.inputs.reduce((sum, inp) => {
    const size = inp.shape.reduce((a, b) => a * b, 1);
    return sum + (spec.part && size === n ? count : size);
  }, 0);
  return { flops: count * expressionFlops(spec.expr), bytes: (inputs + count) * ELEMENT_BYTES };
}

/**
 * Generates the kernel for an elementwise op (see {@linkcode ElementwiseSpec}); its cost is {@linkcode expressionFlops}
 * per output element, and every input and the output once.
 *
 * @example
 * ```ts
 * import { elementwiseKernel } from "./elementwise.ts";
 * const inputs = [{ shape: [2, 3], dtype: "f32" as const }, { shape: [3], dtype: "f32" as const }];
 * const k = elementwiseKernel({ name: "add", outShape: [2, 3], outDtype: "f32", inputs, expr: "v0 + v1" });
 * if (!k.source.includes("let v1 = in1[(i % 3u)];")) throw new Error(k.source); // the (3) input, broadcast
 * ```
 */
export function elementwiseKernel(spec: ElementwiseSpec): KernelSource {
  const n = spec.outShape.reduce((a, b) => a * b, 1);
  const grid = flatGrid(Math.ceil((spec.part ?? n) / WG));
  const buffers = [
    ...spec.inputs.map((inp, k) => read(`in${k}`, wgslType[inp.dtype])),
    readWrite("out", wgslType[spec.outDtype]),
  ];
  const decls = [bindings(buffers)];
  if (spec.part) {
    decls.push("struct Part { first: u32, count: u32 }", bindings([uniform("part", "Part")], buffers.length));
  }
  // In parts, an input of the output's size is bound as the part's range (the part's own index i); others whole,
  // at the flat output index g.
  const loads = spec.inputs.map((inp, k) => {
    const index = broadcastIndex(inp.shape, spec.outShape, spec.part ? "g" : "i");
    return `  let v${k} = in${k}[${index === "g" ? "i" : index}];`;
  });
  const source = `${decls.join("\n")}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = ${grid.index} * ${WG}u + lid.x;
${spec.part ? "  if (i >= part.count) { return; }\n  let g = part.first + i;" : `  if (i >= ${n}u) { return; }`}
${loads.join("\n")}
  out[i] = ${spec.expr};
}
`;
  return { name: spec.name, source, workgroups: grid.workgroups, cost: elementwiseCost(spec, n) };
}

/**
 * WGSL expression for the flat index into an input of shape `inShape` broadcast to `outShape`, given the flat
 * output index `i` (or the variable named `index`).
 *
 * @example
 * ```ts
 * import { broadcastIndex } from "./elementwise.ts";
 * if (broadcastIndex([3], [2, 3]) !== "(i % 3u)") throw new Error("a row repeats along the columns");
 * if (broadcastIndex([2, 1], [2, 3]) !== "((i / 3u) % 2u)") throw new Error("a column repeats along the rows");
 * ```
 */
export function broadcastIndex(inShape: readonly number[], outShape: readonly number[], index = "i"): string {
  const inSize = inShape.reduce((a, b) => a * b, 1);
  if (inSize === 1) return "0u";
  const pad = outShape.length - inShape.length;
  const full = [...Array(pad).fill(1), ...inShape];
  if (full.every((d, j) => d === outShape[j])) return index;
  const terms: string[] = [];
  let outStride = 1, inStride = 1;
  for (let d = outShape.length - 1; d >= 0; d--) {
    if (full[d] !== 1) {
      const coord = outStride === 1 ? `(${index} % ${outShape[d]}u)` : `((${index} / ${outStride}u) % ${outShape[d]}u)`;
      terms.push(inStride === 1 ? coord : `${coord} * ${inStride}u`);
      inStride *= full[d];
    }
    outStride *= outShape[d];
  }
  return terms.join(" + ");
}
