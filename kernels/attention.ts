/**
 * Fused causal attention (FlashAttention-2 style) for head dims that are a multiple of 4, up to 64.
 *
 * Why: the composite `softmax(q k^T) v` writes and re-reads the (T, T) score matrix per head in forward and
 * backward; at CS336's TinyStories shape that is 134 MB per layer and dominated the layer's time (GPU timestamps on
 * the H100, bench/RESULTS.md). These kernels keep scores in workgroup memory and registers:
 *
 * - forward: a workgroup owns `BR` query rows of one (batch, head), one thread per row; it streams key/value blocks
 *   of `BC` rows through workgroup memory, with the online softmax (running max and sum), and writes the output and
 *   the log-sum-exp of each row for the backward.
 * - backward dQ: the same layout, recomputing probabilities from the saved log-sum-exp.
 * - backward dK, dV: a workgroup owns `BC` key rows, one thread per key, and streams query blocks.
 *
 * All three take `q` (BH, Tq, d), `k`, `v` (BH, Tk, d), contiguous; query i sees key j when
 * `j <= i + (Tk - Tq)` (causal) or always (non-causal).
 *
 * @module
 */
import { f32Literal, flatGrid, type KernelSource, memoized } from "./common.ts";

/** Query rows per workgroup. */
export const BR = 64;
/** Key rows per block. */
export const BC = 32;

/** Shape of an attention problem. */
export interface AttentionSpec {
  /** Batch times heads. */
  bh: number;
  /** Query positions. */
  tq: number;
  /** Key positions. */
  tk: number;
  /** Head dim (multiple of 4, at most 64). */
  d: number;
  /** Score scale, usually 1/sqrt(d). */
  scale: number;
  /** Causal masking. */
  causal: boolean;
}

/** Whether the fused kernels support this head dim. */
export function fusedAttentionSupports(d: number): boolean {
  return d % 4 === 0 && d >= 4 && d <= 64;
}

const NEG_INF = f32Literal(-Infinity);

function vecs(n: number, f: (i: number) => string, sep = "\n"): string {
  return Array.from({ length: n }, (_, i) => f(i)).join(sep);
}

function visible(spec: AttentionSpec, key: string, query: string): string {
  const off = spec.tk - spec.tq;
  const inRange = `${key} < ${spec.tk}u && ${query} < ${spec.tq}u`;
  return spec.causal ? `${inRange} && ${key} <= ${query} + ${off}u` : inRange;
}

/**
 * WGSL that stages key/value block `kb` (BC rows) of head `bh` into workgroup memory `Ks`/`Vs` with all BR threads,
 * then waits for the whole workgroup. Rows past the end repeat the last row; the masks ignore them.
 */
function stageKeyBlock(spec: AttentionSpec): string {
  const D4 = spec.d / 4;
  return `    for (var e = lid.x; e < ${BC * D4}u; e += ${BR}u) {
      let row = kb * ${BC}u + e / ${D4}u;
      let src = (bh * ${spec.tk}u + min(row, ${spec.tk - 1}u)) * ${D4}u + e % ${D4}u;
      Ks[e] = k[src];
      Vs[e] = v[src];
    }
    workgroupBarrier();`;
}

/**
 * The part both query-block kernels (forward and dQ) share: the K/V staging arrays, the query row of this thread
 * (`qi`, flat row `r`), its scaled query in registers `q0..`, and `nkb`, the number of key blocks it needs (causal:
 * the block's last query sees keys up to qb*BR + BR - 1 + (Tk - Tq)).
 */
function queryBlockPrologue(spec: AttentionSpec): { shared: string; setup: string } {
  const D4 = spec.d / 4, off = spec.tk - spec.tq;
  const keyBlocks = Math.ceil(spec.tk / BC);
  const nkb = spec.causal ? `min(${keyBlocks}u, (qb * ${BR}u + ${BR - 1 + off}u) / ${BC}u + 1u)` : `${keyBlocks}u`;
  return {
    shared: `var<workgroup> Ks: array<vec4f, ${BC * D4}>;
var<workgroup> Vs: array<vec4f, ${BC * D4}>;`,
    setup: `  let qb = wid.x; let bh = wid.y;
  let qi = qb * ${BR}u + lid.x;
  let r = bh * ${spec.tq}u + min(qi, ${spec.tq - 1}u);
${vecs(D4, (i) => `  let q${i} = q[r * ${D4}u + ${i}u] * ${f32Literal(spec.scale)};`)}
  let nkb = ${nkb};`,
  };
}

/** Bindings: q, k, v, out (write), lse (write, (BH, Tq)). Grid: (ceil(Tq/BR), BH). */
function generateAttentionForwardKernel(spec: AttentionSpec): KernelSource {
  const D4 = spec.d / 4;
  const pro = queryBlockPrologue(spec);
  return {
    name: "attention_forward",
    workgroups: [Math.ceil(spec.tq / BR), spec.bh, 1],
    source: `@group(0) @binding(0) var<storage, read> q: array<vec4f>;
@group(0) @binding(1) var<storage, read> k: array<vec4f>;
@group(0) @binding(2) var<storage, read> v: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> o: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;
${pro.shared}
var<workgroup> S: array<f32, ${BC * BR}>;
@compute @workgroup_size(${BR})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
${pro.setup}
${vecs(D4, (i) => `  var o${i} = vec4f(0.0);`)}
  var m = ${NEG_INF};
  var l = 0.0;
  for (var kb = 0u; kb < nkb; kb++) {
${stageKeyBlock(spec)}
    var mb = m;
    for (var j = 0u; j < ${BC}u; j++) {
      let kj = kb * ${BC}u + j;
      let s = ${vecs(D4, (i) => `dot(q${i}, Ks[j * ${D4}u + ${i}u])`, " + ")};
      let sv = select(${NEG_INF}, s, ${visible(spec, "kj", "qi")});
      S[j * ${BR}u + lid.x] = sv;
      mb = max(mb, sv);
    }
    // Rescale what was accumulated under the old maximum (nothing visible yet: keep the factor at 1).
    let corr = select(exp(m - mb), 1.0, mb == ${NEG_INF});
    l *= corr;
${vecs(D4, (i) => `    o${i} *= corr;`)}
    for (var j = 0u; j < ${BC}u; j++) {
      let sv = S[j * ${BR}u + lid.x];
      let p = select(exp(sv - mb), 0.0, sv == ${NEG_INF});
      l += p;
${vecs(D4, (i) => `      o${i} += p * Vs[j * ${D4}u + ${i}u];`)}
    }
    m = mb;
    workgroupBarrier();
  }
  if (qi < ${spec.tq}u) {
    let inv = select(1.0 / l, 0.0, l == 0.0);
    let orow = (bh * ${spec.tq}u + qi) * ${D4}u;
${vecs(D4, (i) => `    o[orow + ${i}u] = o${i} * inv;`)}
    lse[bh * ${spec.tq}u + qi] = m + log(l);
  }
}
`,
  };
}

/**
 * dQ = scale * sum_j dS_ij k_j with dS = P (dP - D), dP = dO v^T, P recomputed from the log-sum-exp.
 * Bindings: q, k, v, dout, lse, delta (rowsum(dO * O)), dq (write). Grid: (ceil(Tq/BR), BH).
 */
function generateAttentionBackwardDqKernel(spec: AttentionSpec): KernelSource {
  const D4 = spec.d / 4;
  const pro = queryBlockPrologue(spec);
  return {
    name: "attention_backward_dq",
    workgroups: [Math.ceil(spec.tq / BR), spec.bh, 1],
    source: `@group(0) @binding(0) var<storage, read> q: array<vec4f>;
@group(0) @binding(1) var<storage, read> k: array<vec4f>;
@group(0) @binding(2) var<storage, read> v: array<vec4f>;
@group(0) @binding(3) var<storage, read> dout: array<vec4f>;
@group(0) @binding(4) var<storage, read> lse: array<f32>;
@group(0) @binding(5) var<storage, read> delta: array<f32>;
@group(0) @binding(6) var<storage, read_write> dq: array<vec4f>;
${pro.shared}
@compute @workgroup_size(${BR})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
${pro.setup}
${vecs(D4, (i) => `  let g${i} = dout[r * ${D4}u + ${i}u];`)}
${vecs(D4, (i) => `  var dq${i} = vec4f(0.0);`)}
  let rowLse = lse[r];
  let rowDelta = delta[r];
  for (var kb = 0u; kb < nkb; kb++) {
${stageKeyBlock(spec)}
    for (var j = 0u; j < ${BC}u; j++) {
      let kj = kb * ${BC}u + j;
      let s = ${vecs(D4, (i) => `dot(q${i}, Ks[j * ${D4}u + ${i}u])`, " + ")};
      let p = select(0.0, exp(s - rowLse), ${visible(spec, "kj", "qi")});
      let dp = ${vecs(D4, (i) => `dot(g${i}, Vs[j * ${D4}u + ${i}u])`, " + ")};
      let ds = p * (dp - rowDelta);
${vecs(D4, (i) => `      dq${i} += ds * Ks[j * ${D4}u + ${i}u];`)}
    }
    workgroupBarrier();
  }
  if (qi < ${spec.tq}u) {
${vecs(D4, (i) => `    dq[r * ${D4}u + ${i}u] = dq${i} * ${f32Literal(spec.scale)};`)}
  }
}
`,
  };
}

/**
 * Key rows (threads) per workgroup and query rows per staged tile of the dK/dV kernel: 64 threads share 8 KB of
 * staged queries and output gradients (at d = 32), where 32 threads sharing 16 KB left the H100 mostly idle
 * (few resident warps per SM).
 */
const KEYS = 64, QUERIES = 32;

/**
 * dV = sum_i P_ij dO_i and dK = scale * sum_i dS_ij q_i, one thread per key row.
 * Bindings: q, k, v, dout, lse, delta, dk (write), dv (write). Grid: (ceil(Tk/64), BH).
 */
function generateAttentionBackwardDkvKernel(spec: AttentionSpec): KernelSource {
  const D4 = spec.d / 4, off = spec.tk - spec.tq;
  const queryBlocks = Math.ceil(spec.tq / QUERIES);
  // Causal: the first query that sees key kb*BC is kb*BC - off.
  const qb0 = spec.causal ? `select(0u, (kb * ${KEYS}u - ${off}u) / ${QUERIES}u, kb * ${KEYS}u > ${off}u)` : "0u";
  return {
    name: "attention_backward_dkv",
    workgroups: [Math.ceil(spec.tk / KEYS), spec.bh, 1],
    source: `@group(0) @binding(0) var<storage, read> q: array<vec4f>;
@group(0) @binding(1) var<storage, read> k: array<vec4f>;
@group(0) @binding(2) var<storage, read> v: array<vec4f>;
@group(0) @binding(3) var<storage, read> dout: array<vec4f>;
@group(0) @binding(4) var<storage, read> lse: array<f32>;
@group(0) @binding(5) var<storage, read> delta: array<f32>;
@group(0) @binding(6) var<storage, read_write> dk: array<vec4f>;
@group(0) @binding(7) var<storage, read_write> dv: array<vec4f>;
var<workgroup> Qs: array<vec4f, ${QUERIES * D4}>;
var<workgroup> Gs: array<vec4f, ${QUERIES * D4}>;
var<workgroup> Ls: array<f32, ${QUERIES}>;
var<workgroup> Ds: array<f32, ${QUERIES}>;
@compute @workgroup_size(${KEYS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let kb = wid.x; let bh = wid.y;
  let kj = kb * ${KEYS}u + lid.x;
  let r = bh * ${spec.tk}u + min(kj, ${spec.tk - 1}u);
${vecs(D4, (i) => `  let k${i} = k[r * ${D4}u + ${i}u] * ${f32Literal(spec.scale)};`)}
${vecs(D4, (i) => `  let v${i} = v[r * ${D4}u + ${i}u];`)}
${vecs(D4, (i) => `  var dk${i} = vec4f(0.0);`)}
${vecs(D4, (i) => `  var dv${i} = vec4f(0.0);`)}
  for (var qb = ${qb0}; qb < ${queryBlocks}u; qb++) {
    for (var e = lid.x; e < ${QUERIES * D4}u; e += ${KEYS}u) {
      let row = qb * ${QUERIES}u + e / ${D4}u;
      let src = (bh * ${spec.tq}u + min(row, ${spec.tq - 1}u)) * ${D4}u + e % ${D4}u;
      Qs[e] = q[src];
      Gs[e] = dout[src];
    }
    for (var e = lid.x; e < ${QUERIES}u; e += ${KEYS}u) {
      let row = bh * ${spec.tq}u + min(qb * ${QUERIES}u + e, ${spec.tq - 1}u);
      Ls[e] = lse[row];
      Ds[e] = delta[row];
    }
    workgroupBarrier();
    for (var i = 0u; i < ${QUERIES}u; i++) {
      let qi = qb * ${QUERIES}u + i;
      let s = ${vecs(D4, (c) => `dot(Qs[i * ${D4}u + ${c}u], k${c})`, " + ")};
      let p = select(0.0, exp(s - Ls[i]), ${visible(spec, "kj", "qi")});
      let dp = ${vecs(D4, (c) => `dot(Gs[i * ${D4}u + ${c}u], v${c})`, " + ")};
      let ds = p * (dp - Ds[i]);
${vecs(D4, (c) => `      dv${c} += p * Gs[i * ${D4}u + ${c}u];`)}
${vecs(D4, (c) => `      dk${c} += ds * Qs[i * ${D4}u + ${c}u];`)}
    }
    workgroupBarrier();
  }
  if (kj < ${spec.tk}u) {
${vecs(D4, (c) => `    dk[r * ${D4}u + ${c}u] = dk${c} * ${f32Literal(spec.scale)};`)}
${vecs(D4, (c) => `    dv[r * ${D4}u + ${c}u] = dv${c};`)}
  }
}
`,
  };
}

/** {@linkcode generateAttentionForwardKernel}, memoized by its arguments (see `memoized` in common.ts). */
export const attentionForwardKernel: (spec: AttentionSpec) => KernelSource = memoized(generateAttentionForwardKernel);

/** {@linkcode generateAttentionBackwardDqKernel}, memoized by its arguments (see `memoized` in common.ts). */
export const attentionBackwardDqKernel: (spec: AttentionSpec) => KernelSource = memoized(
  generateAttentionBackwardDqKernel,
);

/** {@linkcode generateAttentionBackwardDkvKernel}, memoized by its arguments (see `memoized` in common.ts). */
export const attentionBackwardDkvKernel: (spec: AttentionSpec) => KernelSource = memoized(
  generateAttentionBackwardDkvKernel,
);

/**
 * `delta[r] = dot(dO[r], O[r])` for every row of (rows, d): the softmax backward's correction term, one thread per
 * row. A generic row reduction put a 256-thread workgroup on each 32-element row (0.15 ms a layer on the H100).
 * Bindings: dout, out, delta (write).
 */
function generateAttentionDeltaKernel(rows: number, d: number): KernelSource {
  const D4 = d / 4, WG = 256;
  const grid = flatGrid(Math.ceil(rows / WG));
  return {
    name: "attention_delta",
    workgroups: grid.workgroups,
    source: `@group(0) @binding(0) var<storage, read> dout: array<vec4f>;
@group(0) @binding(1) var<storage, read> o: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> delta: array<f32>;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let r = ${grid.index} * ${WG}u + lid.x;
  if (r >= ${rows}u) { return; }
  let base = r * ${D4}u;
  delta[r] = ${vecs(D4, (i) => `dot(dout[base + ${i}u], o[base + ${i}u])`, " + ")};
}
`,
  };
}

/** {@linkcode generateAttentionDeltaKernel}, memoized by its arguments. */
export const attentionDeltaKernel: (rows: number, d: number) => KernelSource = memoized(generateAttentionDeltaKernel);
