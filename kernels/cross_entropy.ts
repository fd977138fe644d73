/**
 * Fused softmax cross-entropy over logits (rows, vocab) and integer targets: the forward writes each row's loss
 * and log-sum-exp; the backward writes `(softmax - onehot) * dLoss / rows` without materialising the softmax. A
 * chunk of a larger batch (the LM head's loss in chunks of rows) has a backward that overwrites its logits instead.
 *
 * @module
 */
import {
  bindings,
  ELEMENT_BYTES,
  f32Literal,
  flatGrid,
  type KernelSource,
  memoized,
  read,
  readWrite,
  rowKernelEntry,
} from "./common.ts";

const WG = 256;

/** Cross-entropy over `rows` rows of `vocab` logits. */
export interface CrossEntropySpec {
  rows: number;
  vocab: number;
  /**
   * Floats a row of logits takes in memory, `vocab` when absent: a vocabulary padded to a multiple of 4 or 64
   * (see `paddedVocab` in lib/tensor/ops/nn.ts) has `cols - vocab` columns past it, which the forward ignores. The
   * backward writes them too, with values nothing uses: their weight rows are zeros (no part in dh) and their
   * weight-gradient rows are dropped.
   */
  cols?: number;
}

/**
 * The backward over one chunk of rows of a larger batch (see `linearCrossEntropy`): the loss is the mean over
 * `meanOver` rows, and the gradient overwrites the logits it was computed from, so that a chunk holds one
 * (rows, vocab) buffer instead of two.
 */
export interface CrossEntropyChunkSpec extends CrossEntropySpec {
  /** Rows of the whole batch, whose mean the loss is. */
  meanOver: number;
}

/**
 * Bindings: logits, targets (i32), loss (write, per row), lse (write, per row). Cost: the accounting's 4 FLOPs per
 * logit (compare, subtract, exp, add of the online log-sum-exp) and 3 per row (log, add, subtract); logits and
 * targets read, loss and lse written once.
 */
function generateCrossEntropyForwardKernel({ rows, vocab, cols = vocab }: CrossEntropySpec): KernelSource {
  const entry = rowKernelEntry(rows, WG);
  const negInf = f32Literal(-Infinity);
  // Rows of a multiple of 4 loop over vec4s, each with a loop over its 4 lanes (padding columns read as -inf).
  const vec = cols % 4 === 0;
  const lane = cols === vocab ? "v[c]" : `select(${negInf}, v[c], j * 4u + c < ${vocab}u)`;
  const iterations = vec ? 5 * Math.ceil(cols / 4 / WG) : Math.ceil(vocab / WG);
  return {
    name: "cross_entropy_forward",
    workgroups: entry.workgroups,
    cost: { flops: rows * (4 * vocab + 3), bytes: rows * (cols + 3) * ELEMENT_BYTES },
    loops: { iterations, of: `rows of (${rows}, ${vocab})` },
    source: `${
      bindings([
        vec ? read("logits4", "vec4f") : read("logits", "f32"),
        read("targets", "i32"),
        readWrite("loss", "f32"),
        readWrite("lse", "f32"),
      ])
    }
var<workgroup> redMax: array<f32, ${WG}>;
${entry.head}
  let base = row * ${cols}u;
  // One pass with an online max: each thread keeps (max, sum of exp relative to it), then the pairs are merged.
  var mx = ${f32Literal(-Infinity)};
  var acc = 0.0;
${
      vec
        ? `  // Rows of a multiple of 4: 16-byte loads (the logits are the largest tensor of a step), four online updates each.
  for (var j = lid.x; j < ${cols / 4}u; j += ${WG}u) {
    let v = logits4[base / 4u + j];
    for (var c = 0u; c < 4u; c++) {
      let x = ${lane};
      if (x > mx) { acc = acc * exp(mx - x) + 1.0; mx = x; } else if (x > ${negInf}) { acc += exp(x - mx); }
    }
  }`
        : `  for (var j = lid.x; j < ${vocab}u; j += ${WG}u) {
    let x = logits[base + j];
    // A -inf logit (masked entry) adds nothing; exp(x - mx) would be NaN while mx is still -inf.
    if (x > mx) { acc = acc * exp(mx - x) + 1.0; mx = x; } else if (x > ${negInf}) { acc += exp(x - mx); }
  }`
    }
  redMax[lid.x] = mx;
  red[lid.x] = acc;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (lid.x < s) {
      let m1 = redMax[lid.x]; let m2 = redMax[lid.x + s];
      let m = max(m1, m2);
      // Guard -inf - -inf for threads that saw no element.
      let a1 = select(red[lid.x] * exp(m1 - m), 0.0, m1 == ${f32Literal(-Infinity)});
      let a2 = select(red[lid.x + s] * exp(m2 - m), 0.0, m2 == ${f32Literal(-Infinity)});
      redMax[lid.x] = m;
      red[lid.x] = a1 + a2;
    }
    workgroupBarrier();
  }
  let m = redMax[0];
  let total = red[0];
  if (lid.x == 0u) {
    let l = m + log(total);
    let t = targets[row];
    lse[row] = l;
    // An out-of-range target gives NaN, so that bad data cannot train silently.
    let ti = base + u32(clamp(t, 0, ${vocab - 1}));
    let xt = ${vec ? "logits4[ti / 4u][ti % 4u]" : "logits[ti]"};
    loss[row] = select(bitcast<f32>(0x7fc00000u), l - xt, t >= 0 && t < ${vocab});
  }
}
`,
  };
}

/**
 * Bindings: logits, targets, lse, dLoss (1 element, the gradient of the mean loss), dlogits (write). Rows of a
 * multiple of 4 take four logits a thread through 16-byte loads and stores (H200: the one-logit kernel moved 2.1 TB/s
 * over the 8192 x 10000 logits of a TinyStories step, 0.32 ms; four a thread 0.16 ms). Cost: 4 FLOPs per logit
 * (subtract, exp, subtract the one-hot, scale); logits read and dlogits written once, targets and lse once a row.
 */
function generateCrossEntropyBackwardKernel(spec: CrossEntropySpec): KernelSource {
  return crossEntropyBackwardSource(spec, null);
}

/** Bindings: logits (read-write: the gradient replaces them), targets, lse, dLoss. */
function generateCrossEntropyChunkBackwardKernel(spec: CrossEntropyChunkSpec): KernelSource {
  return crossEntropyBackwardSource(spec, spec.meanOver);
}

/** The backward kernel, writing dlogits (`meanOver` null) or overwriting a chunk's logits with their gradient. */
function crossEntropyBackwardSource(
  { rows, vocab, cols = vocab }: CrossEntropySpec,
  meanOver: number | null,
): KernelSource {
  const w = cols % 4 === 0 ? 4 : 1, type = w === 4 ? "vec4f" : "f32";
  const n = (rows * cols) / w, perRow = cols / w;
  const grid = flatGrid(Math.ceil(n / WG));
  // Which of the thread's logits is the target: component-wise against the lane offsets 0..3.
  const onehot = w === 4 ? "select(vec4f(0.0), vec4f(1.0), vec4i(0, 1, 2, 3) == vec4i(t))" : "select(0.0, 1.0, t == 0)";
  const inPlace = meanOver !== null;
  const buffers = [
    (inPlace ? readWrite : read)("logits", type),
    read("targets", "i32"),
    read("lse", "f32"),
    read("dloss", "f32"),
    ...(inPlace ? [] : [readWrite("dlogits", type)]),
  ];
  return {
    name: inPlace ? "cross_entropy_backward_chunk" : "cross_entropy_backward",
    workgroups: grid.workgroups,
    // Same FLOPs and reads either way; in place, the gradient is written over the logits instead of a new buffer.
    cost: { flops: 4 * rows * vocab, bytes: (rows * (2 * cols + 2) + 1) * ELEMENT_BYTES },
    source: `${bindings(buffers)}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = ${grid.index} * ${WG}u + lid.x;
  if (i >= ${n}u) { return; }
  let row = i / ${perRow}u;
  let t = targets[row] - i32((i % ${perRow}u) * ${w}u);
  let p = exp(logits[i] - ${type}(lse[row]));
  ${inPlace ? "logits" : "dlogits"}[i] = (p - ${onehot}) * (dloss[0] * ${f32Literal(1 / (meanOver ?? rows))});
}
`,
  };
}

/**
 * {@linkcode generateCrossEntropyForwardKernel}, memoized by its arguments (see `memoized` in common.ts).
 *
 * @example
 * ```ts
 * import { crossEntropyForwardKernel } from "./cross_entropy.ts";
 * const k = crossEntropyForwardKernel({ rows: 64, vocab: 50257 }); // a workgroup a row
 * if (k.name !== "cross_entropy_forward" || k.workgroups[0] !== 64) throw new Error(k.name);
 * ```
 */
export const crossEntropyForwardKernel: (spec: CrossEntropySpec) => KernelSource = memoized(
  generateCrossEntropyForwardKernel,
);

/**
 * {@linkcode generateCrossEntropyBackwardKernel}, memoized by its arguments (see `memoized` in common.ts).
 *
 * @example
 * ```ts
 * import { crossEntropyBackwardKernel } from "./cross_entropy.ts";
 * const k = crossEntropyBackwardKernel({ rows: 64, vocab: 50257 }); // a thread a logit
 * if (k.name !== "cross_entropy_backward" || k.workgroups[0] !== 12565) throw new Error(`${k.workgroups}`);
 * ```
 */
export const crossEntropyBackwardKernel: (spec: CrossEntropySpec) => KernelSource = memoized(
  generateCrossEntropyBackwardKernel,
);

/**
 * {@linkcode generateCrossEntropyChunkBackwardKernel}, memoized by its arguments (see `memoized` in common.ts).
 *
 * @example
 * ```ts
 * import { crossEntropyChunkBackwardKernel } from "./cross_entropy.ts";
 * // 64 rows of a batch of 8192: the gradient of the mean over 8192 rows overwrites the chunk's logits.
 * const k = crossEntropyChunkBackwardKernel({ rows: 64, vocab: 50257, meanOver: 8192 });
 * if (!k.source.includes("logits[i] = ") || k.source.includes("dlogits")) throw new Error(k.source);
 * ```
 */
export const crossEntropyChunkBackwardKernel: (spec: CrossEntropyChunkSpec) => KernelSource = memoized(
  generateCrossEntropyChunkBackwardKernel,
);
