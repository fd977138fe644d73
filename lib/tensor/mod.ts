/**
 * Tensors on WebGPU with reverse-mode autograd: creation, elementwise, reductions, movement, matmul and the
 * fused neural-network ops.
 *
 * Each module works on its own: ops record their gradients in the graph (`graph.ts`), and the engine that walks it
 * (`backward.ts`) imports the few ops it needs itself, so nothing has to be installed by importing this file first.
 *
 * @example
 * ```ts
 * import { initGpu, matmul, param, randn, square, sum } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const w = param(randn([4, 4], { seed: 0 }));
 * const loss = sum(square(matmul(w, w)));
 * loss.backward();
 * if (w.grad?.shape.join() !== "4,4") throw new Error("no gradient for w");
 * ```
 *
 * @module
 */
export { type Backend, gpu, initGpu, type MemoryStats } from "../gpu/backend.ts";
export { type GpuInfo } from "../gpu/device.ts";
export { type DType, type HostArray, keep, type NestedArray, readAll, type Storage, Tensor, tidy } from "./tensor.ts";
export {
  detach,
  type GradNode,
  isGradEnabled,
  noGrad,
  record,
  recordAccumulating,
  type RecordOptions,
} from "./graph.ts";
export { backward, valueAndGrad } from "./backward.ts";
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
export {
  matmul,
  type MatmulOptions,
  type MatmulRopeOptions,
  type MatmulSettings,
  setMatmulSettings,
  withTransposedWeights,
} from "./ops/matmul.ts";
export type { MatmulTile, MatmulVariant } from "../../kernels/matmul.ts";
export {
  attention,
  type AttentionLayout,
  type AttentionOptions,
  type AttentionVariant,
  crossEntropy,
  embedding,
  linearCrossEntropy,
  type LinearCrossEntropyOptions,
  LOGIT_CHUNK_BYTES,
  logitChunkRows,
  logSoftmax,
  packedAttention,
  type PackedAttentionOptions,
  packedSiluGate,
  rmsNorm,
  rope,
  type RopeOptions,
  siluGateLinear,
  type SiluGateLinearOptions,
  softmax,
  type SoftmaxOptions,
} from "./ops/nn.ts";
