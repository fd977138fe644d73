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
 * Most vec4s of a row one thread holds in registers (64 floats: rows of up to 16,384 logits); longer rows loop.
 * WGSL compilers keep an array indexed at run time in memory, so the held vec4s are separate `let`s.
 */
const HELD_VEC4S = 16;

/** Threads of the first level of the (max, sum) merge, and pairs each merges: FAN * FAN = WG. */
const FAN = 16;

/** `op(a, b)` over `terms` as a balanced tree (a chain would make each step wait on the one before). */
function balanced(terms: string[], op: (a: string, b: string) => string): string {
  if (terms.length === 1) return terms[0];
  const half = Math.ceil(terms.length / 2);
  return op(balanced(terms.slice(0, half), op), balanced(terms.slice(half), op));
}

/**
 * WGSL that merges {@linkcode FAN} (max, sum of exp relative to it) pairs, `redMax[index(i)]` and `red[index(i)]`,
 * into `let <m>` and `let <s>`: their max, and each sum rescaled to it. A pair whose max is -inf (no logit above
 * -inf) adds 0: its sum is 0, and exp(-inf - -inf) would be NaN.
 */
function mergePairs(index: (i: number) => string, m: string, s: string, indent: string): string {
  const negInf = f32Literal(-Infinity);
  const ids = Array.from({ length: FAN }, (_, i) => i);
  const maxes = ids.map((i) => `${indent}let ${m}${i} = redMax[${index(i)}];`);
  const top = balanced(ids.map((i) => `${m}${i}`), (a, b) => `max(${a}, ${b})`);
  const terms = ids.map((i) => `select(red[${index(i)}] * exp(${m}${i} - ${m}), 0.0, ${m}${i} == ${negInf})`);
  return [...maxes, `${indent}let ${m} = ${top};`, `${indent}let ${s} = ${balanced(terms, (a, b) => `(${a} + ${b})`)};`]
    .join("\n");
}

/**
 * Bindings: logits, targets (i32), loss (write, per row), lse (write, per row). A workgroup owns a row. Rows of a
 * multiple of 4 up to {@linkcode HELD_VEC4S} vec4s a thread load all of the thread's vec4s before any arithmetic,
 * every load in flight at once (a loop that loads then updates waits on each load: the 8192 x 10000 logits of a
 * TinyStories step moved at 2.5 TB/s on the H200 that way), then take their max and the sum of exp relative to it;
 * longer rows loop over vec4s with an online max, and rows of another length over single logits. The threads'
 * (max, sum) pairs merge in two levels of {@linkcode FAN} (two barriers where a tree of pairs takes nine). Cost: the
 * accounting's 4 FLOPs per logit (compare, subtract, exp, add of the log-sum-exp) and 3 per row (log, add,
 * subtract); logits and targets read, loss and lse written once.
 */
function generateCrossEntropyForwardKernel({ rows, vocab, cols = vocab }: CrossEntropySpec): KernelSource {
  const entry = rowKernelEntry(rows, WG);
  const vec = cols % 4 === 0, held = Math.ceil(cols / 4 / WG);
  const inRegisters = vec && held <= HELD_VEC4S;
  const merge = inRegisters ? fanMerge() : treeMerge();
  const iterations = inRegisters ? 0 : vec ? 5 * held : Math.ceil(vocab / WG);
  return {
    name: "cross_entropy_forward",
    workgroups: entry.workgroups,
    cost: { flops: rows * (4 * vocab + 3), bytes: rows * (cols + 3) * ELEMENT_BYTES },
    ...(iterations > 0 ? { loops: { iterations, of: `rows of (${rows}, ${vocab})` } } : {}),
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
  // Each thread finds (max, sum of exp relative to it) over its logits; then the pairs are merged.
${inRegisters ? heldRow(vocab, cols) : loopedRow(vocab, cols)}
  redMax[lid.x] = mx;
  red[lid.x] = acc;
  workgroupBarrier();
${merge.shared}
  if (lid.x == 0u) {
${merge.root}
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
 * How the threads' (max, sum) pairs in `redMax` and `red` become the row's `m` and `total`: `shared`, run by every
 * thread after the pairs are stored and a barrier, and `root`, thread 0's lets of the two.
 */
interface PairMerge {
  shared: string;
  root: string;
}

/** The two-level merge: threads 0..FAN-1 each merge FAN pairs into their own slot, then thread 0 those FAN. */
function fanMerge(): PairMerge {
  const shared = `  if (lid.x < ${FAN}u) {
${mergePairs((i) => (i === 0 ? "lid.x" : `lid.x + ${i * FAN}u`), "p", "q", "    ")}
    redMax[lid.x] = p;
    red[lid.x] = q;
  }
  workgroupBarrier();`;
  return { shared, root: mergePairs((i) => `${i}u`, "m", "total", "    ") };
}

/**
 * A tree of pairwise merges into slot 0, for the looped rows: on GPT-2's 50304-word rows the two-level merge ran
 * the kernel 0.015 ms slower a dispatch (H200, bench/RESULTS.md).
 */
function treeMerge(): PairMerge {
  const negInf = f32Literal(-Infinity);
  const shared = `  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (lid.x < s) {
      let m1 = redMax[lid.x]; let m2 = redMax[lid.x + s];
      let m = max(m1, m2);
      // Guard -inf - -inf for threads that saw no element.
      let a1 = select(red[lid.x] * exp(m1 - m), 0.0, m1 == ${negInf});
      let a2 = select(red[lid.x + s] * exp(m2 - m), 0.0, m2 == ${negInf});
      redMax[lid.x] = m;
      red[lid.x] = a1 + a2;
    }
    workgroupBarrier();
  }`;
  return { shared, root: "    let m = redMax[0];\n    let total = red[0];" };
}

/**
 * The thread's `mx` and `acc` over a row of at most {@linkcode HELD_VEC4S} vec4s a thread, held in registers: `vK`
 * is the row's vec4 `lid.x + K * WG`. Lanes past the row or past `vocab` (padding columns) read as -inf; a -inf
 * lane adds exp(-inf) = 0, and a thread whose lanes are all -inf subtracts 0 instead of its max (-inf - -inf is
 * NaN), leaving (-inf, 0).
 */
function heldRow(vocab: number, cols: number): string {
  const negInf = f32Literal(-Infinity);
  const n4 = cols / 4, held = Math.ceil(n4 / WG);
  const lines = [`  let b4 = row * ${n4}u;`];
  const names: string[] = [];
  for (let k = 0; k < held; k++) {
    const j = k === 0 ? "lid.x" : `lid.x + ${k * WG}u`;
    names.push(`v${k}`);
    // Only the last vec4s can run past the row or hold columns past vocab.
    if ((k + 1) * WG * 4 <= vocab) {
      lines.push(`  let v${k} = logits4[b4 + ${j}];`);
      continue;
    }
    const at = (k + 1) * WG > n4 ? `min(${j}, ${n4 - 1}u)` : j;
    const keep = cols === vocab ? `${j} < ${n4}u` : `(${j}) * 4u + vec4u(0u, 1u, 2u, 3u) < vec4u(${vocab}u)`;
    lines.push(`  let v${k} = select(vec4f(${negInf}), logits4[b4 + ${at}], ${keep});`);
  }
  const mv = balanced(names, (a, b) => `max(${a}, ${b})`);
  const e = balanced(names.map((v) => `exp(${v} - vec4f(ms))`), (a, b) => `(${a} + ${b})`);
  return [
    `  // Every load first (${held} a thread), then the arithmetic: the loads are all in flight at once.`,
    ...lines,
    `  let mv = ${mv};`,
    "  let mx = max(max(mv.x, mv.y), max(mv.z, mv.w));",
    `  let ms = select(mx, 0.0, mx == ${negInf});`,
    `  let e = ${e};`,
    "  let acc = (e.x + e.y) + (e.z + e.w);",
  ].join("\n");
}

/**
 * The thread's `mx` and `acc` over a row too long to hold: an online max over the thread's vec4s (rows of a
 * multiple of 4, padding columns reading as -inf) or single logits.
 */
function loopedRow(vocab: number, cols: number): string {
  const negInf = f32Literal(-Infinity);
  // A -inf logit (masked entry) adds nothing; exp(x - mx) would be NaN while mx is still -inf.
  const update =
    `if (x > mx) { acc = acc * exp(mx - x) + 1.0; mx = x; } else if (x > ${negInf}) { acc += exp(x - mx); }`;
  const head = `  var mx = ${negInf};\n  var acc = 0.0;\n`;
  if (cols % 4 !== 0) {
    return `${head}  for (var j = lid.x; j < ${vocab}u; j += ${WG}u) {
    let x = logits[base + j];
    ${update}
  }`;
  }
  const lane = cols === vocab ? "v[c]" : `select(${negInf}, v[c], j * 4u + c < ${vocab}u)`;
  return `${head}  // 16-byte loads (the logits are the largest tensor of a step), four online updates each.
  for (var j = lid.x; j < ${cols / 4}u; j += ${WG}u) {
    let v = logits4[base / 4u + j];
    for (var c = 0u; c < 4u; c++) {
      let x = ${lane};
      ${update}
    }
  }`;
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
