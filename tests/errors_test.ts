/**
 * Shape and type errors: every op's error names the op and the shapes involved.
 */
import { assertRejects, assertThrows } from "./assert.ts";
import {
  add,
  attention,
  broadcastTo,
  compare,
  concat,
  crossEntropy,
  div,
  embedding,
  exp,
  full,
  initGpu,
  logSoftmax,
  matmul,
  max,
  maximum,
  mean,
  minimum,
  mul,
  param,
  permute,
  pow,
  reshape,
  rmsNorm,
  rope,
  slice,
  softmax,
  sub,
  sum,
  sumTo,
  type Tensor,
  tensor,
  transpose,
  where,
  zeros,
} from "../lib/tensor/mod.ts";

await initGpu();

const f = (...shape: number[]) => zeros(shape);
const i32 = (...shape: number[]) => zeros(shape, "i32");

/** Fails unless `fn` throws an error whose message contains every one of `parts`. */
function assertErrorNames(fn: () => unknown, ...parts: string[]): void {
  const err = assertThrows(fn);
  for (const p of parts) {
    if (!err.message.includes(p)) throw new Error(`error ${JSON.stringify(err.message)} does not mention "${p}"`);
  }
}

Deno.test("binary ops, compare and where: broadcast errors name the op and both shapes", () => {
  const a = f(2, 3), b = f(4);
  const ops: [string, (x: Tensor, y: Tensor) => Tensor][] = [
    ["add", add],
    ["sub", sub],
    ["mul", mul],
    ["div", div],
    ["pow", pow],
    ["maximum", maximum],
    ["minimum", minimum],
    ["lt", (x, y) => compare("lt", x, y)],
    ["where", (x, y) => where(f(2, 1), x, y)],
  ];
  for (const [name, op] of ops) assertErrorNames(() => op(a, b), name, "(2, 3)", "(4)");
});

Deno.test("elementwise and reductions: dtype and axis errors name the op and the tensor", () => {
  assertErrorNames(() => exp(i32(3)), "exp", "(3) i32");
  assertErrorNames(() => add(i32(3), 1), "add", "(3) i32");
  assertErrorNames(() => sum(f(2, 3), { axis: 2 }), "sum", "axis 2", "(2, 3)");
  assertErrorNames(() => mean(f(2, 3), { axis: -3 }), "mean", "axis -3", "(2, 3)");
  assertErrorNames(() => max(f(2, 0), { axis: 1 }), "max", "(2, 0)");
  assertErrorNames(() => max(i32(2)), "max", "(2) i32");
  assertErrorNames(() => sumTo(f(2, 3), [4, 3]), "sumTo", "(2, 3)", "(4, 3)");
});

Deno.test("movement ops: errors name the op and the shapes", () => {
  const x = f(2, 3);
  assertErrorNames(() => reshape(x, [4]), "reshape", "(2, 3)", "(4)");
  assertErrorNames(() => reshape(x, [-1, -1]), "reshape", "(2, 3)", "(-1, -1)");
  assertErrorNames(() => permute(x, [0]), "permute", "(2, 3)");
  assertErrorNames(() => permute(x, [0, 0]), "permute", "(2, 3)");
  assertErrorNames(() => transpose(x, 0, 2), "transpose", "(2, 3)");
  assertErrorNames(() => slice(x, { axis: 1, start: 2, end: 5 }), "slice", "(2, 3)");
  assertErrorNames(() => slice(x, { axis: 3, start: 0 }), "slice", "(2, 3)");
  assertErrorNames(() => concat([x, f(2, 4)], 0), "concat", "(2, 3)", "(2, 4)");
  assertErrorNames(() => concat([x, f(3)], 0), "concat", "(2, 3)", "(3)");
  assertErrorNames(() => concat([]), "concat");
  assertErrorNames(() => broadcastTo(x, [3, 3]), "broadcastTo", "(2, 3)", "(3, 3)");
});

Deno.test("matmul: inner, batch and rank errors name both shapes", () => {
  assertErrorNames(() => matmul(f(2, 3), f(4, 5)), "matmul", "(2, 3)", "(4, 5)");
  assertErrorNames(() => matmul(f(2, 3), f(5, 4), { transB: true }), "matmul", "(2, 3)", "(5, 4)");
  assertErrorNames(() => matmul(f(2, 2, 3), f(3, 2, 5)), "matmul", "(2, 2, 3)", "(3, 2, 5)");
  assertErrorNames(() => matmul(f(3), f(3, 2)), "matmul", "(3)", "(3, 2)");
  assertErrorNames(() => matmul(i32(2, 2), f(2, 2)), "matmul", "(2, 2) i32");
});

Deno.test("nn ops: errors name the op and the shapes", () => {
  assertErrorNames(() => softmax(f(2, 3, 2), { causal: true }), "softmax", "(2, 3, 2)");
  assertErrorNames(() => logSoftmax(i32(3)), "logSoftmax", "(3) i32");
  assertErrorNames(() => rmsNorm(f(2, 3), f(4)), "rmsNorm", "(2, 3)", "(4)");
  assertErrorNames(() => rope(f(2, 3), i32(2)), "rope", "(2, 3)");
  assertErrorNames(() => rope(f(2, 4), i32(3)), "rope", "(2, 4)", "(3)");
  assertErrorNames(() => rope(f(2, 4), f(2)), "rope", "(2) f32");
  assertErrorNames(() => embedding(f(3), i32(2)), "embedding", "(3)");
  assertErrorNames(() => embedding(f(3, 2), f(2)), "embedding", "(2) f32");
  assertErrorNames(() => crossEntropy(f(2, 5), i32(3)), "crossEntropy", "(2, 5)", "(3)");
  assertErrorNames(() => crossEntropy(f(2, 5), f(2)), "crossEntropy", "(2) f32");
  assertErrorNames(() => attention(f(2, 4, 8), f(2, 4, 6), f(2, 4, 8)), "attention", "(2, 4, 8)", "(2, 4, 6)");
  assertErrorNames(() => attention(f(2, 5, 8), f(2, 4, 8), f(2, 4, 8)), "attention", "5", "4");
});

Deno.test("creation errors: ragged arrays, sizes, dtypes, shapes", async () => {
  assertErrorNames(() => tensor([[1, 2], [3]]), "tensor", "ragged");
  assertErrorNames(() => tensor([1, 2, 3], { shape: [2, 2] }), "tensor", "(2, 2)");
  assertErrorNames(() => tensor([1.5], { dtype: "i32" }), "tensor", "1.5");
  assertErrorNames(() => zeros([2, -1]), "(2, -1)");
  assertErrorNames(() => full([2], 3e9, "i32"), "3000000000", "i32");
  assertErrorNames(() => full([2], NaN, "i32"), "NaN", "i32");
  assertErrorNames(() => param(i32(2)), "param", "(2) i32");
  const err = await assertRejects(() => tensor([1, 2]).item(), "item");
  if (!err.message.includes("(2)")) throw new Error(`item() error ${JSON.stringify(err.message)} lacks the shape`);
});
