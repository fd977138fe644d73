/**
 * Tensors on WebGPU with reverse-mode autograd: creation, elementwise, reductions, movement, matmul and the
 * fused neural-network ops.
 *
 * @example
 * ```ts ignore
 * import { initGpu, param, randn, matmul, sum, square } from "./mod.ts";
 * await initGpu();
 * const w = param(randn([4, 4], { seed: 0 }));
 * const loss = sum(square(matmul(w, w)));
 * loss.backward();
 * console.log(await w.grad!.data());
 * ```
 *
 * @module
 */
import { setAutogradOps } from "./autograd.ts";
import { view } from "./tensor.ts";
import { copy, fill } from "./ops/elementwise.ts";
import { sumTo } from "./ops/reduce.ts";
import { mapElements } from "./ops/elementwise.ts";

setAutogradOps({
  add: (a, b) => mapElements("grad_accumulate", [a, b], "v0 + v1"),
  onesLike: (t) => fill(t.shape, 1),
  view: (t) => view(t, t.shape),
  copy,
  sumTo,
});

export { type Backend, gpu, initGpu, type MemoryStats } from "../gpu/backend.ts";
export { type GpuInfo } from "../gpu/device.ts";
export { type DType, type HostArray, keep, type NestedArray, readAll, type Storage, Tensor, tidy } from "./tensor.ts";
export { backward, detach, type GradNode, isGradEnabled, noGrad, valueAndGrad } from "./autograd.ts";
export {
  full,
  ones,
  param,
  rand,
  randn,
  type RandomOptions,
  tensor,
  type TensorOptions,
  truncNormal,
  zeros,
} from "./create.ts";
export {
  abs,
  add,
  cast,
  compare,
  type CompareOp,
  copy,
  div,
  exp,
  fullLike,
  log,
  mapElements,
  maximum,
  minimum,
  mul,
  neg,
  pow,
  relu,
  rsqrt,
  sigmoid,
  silu,
  sqrt,
  square,
  sub,
  tanh,
  where,
} from "./ops/elementwise.ts";
export { max, mean, type ReduceOptions, sum, sumTo } from "./ops/reduce.ts";
export { broadcastTo, concat, permute, reshape, slice, transpose } from "./ops/movement.ts";
export { matmul, type MatmulOptions, type MatmulSettings, setMatmulSettings } from "./ops/matmul.ts";
export type { MatmulTile, MatmulVariant } from "../../kernels/matmul.ts";
export {
  attention,
  type AttentionLayout,
  type AttentionOptions,
  type AttentionVariant,
  crossEntropy,
  embedding,
  logSoftmax,
  packedAttention,
  type PackedAttentionOptions,
  packedSiluGate,
  rmsNorm,
  rope,
  type RopeOptions,
  softmax,
  type SoftmaxOptions,
} from "./ops/nn.ts";
