/**
 * Next-token sampling on the GPU, so that a decode step needs no GPU -> CPU round trip: the kernel reads a row of
 * logits and writes the chosen id straight into the i32 buffer that the next step's embedding reads.
 *
 * One workgroup per sequence. Greedy (temperature <= 0) is an argmax with ties to the lower id, as on the CPU.
 * Otherwise, with `w_i = exp((l_i - max) / T)`:
 *
 * - top-k keeps the ids whose logit is at least the k-th largest. The threshold is found exactly by a 16-ary
 *   search over the order-preserving u32 keys of the f32 logits: 8 rounds of 4 bits, each counting the elements
 *   above 15 candidate thresholds in one pass, so the threshold is always an actual logit (no bisection error);
 * - top-p then keeps id i when the mass of the kept ids strictly above it is below `p * total`: the prefix of the
 *   descending order whose cumulative probability first reaches p, boundary element included, exactly the set of
 *   the CPU reference `candidateSet` on logits without ties (up to f32 summation order at the boundary). The
 *   threshold is found by the same search on masses;
 * - the id is then drawn from the renormalised kept weights with the Gumbel-max trick, `argmax (l_i - max) / T +
 *   g_i` with `g_i = -log(-log(u_i))`: exact sampling with one pass and no sort or prefix sum. `u_i` comes from a
 *   counter-based hash (PCG) of (seed, draw counter, row, id), so a seed reproduces on any GPU and needs no RNG
 *   state beyond the per-row draw counter.
 *
 * Bindings: logits (rows, vocab), params (u32: seed, temperature f32 bits, top-k, top-p f32 bits), state (u32,
 * {@linkcode STATE_WORDS} per row: position, draws), tokens (i32, rows; write), ring (i32, ringSteps * rows; the id
 * of draw d of row b at `(d % ringSteps) * rows + b`), info (u32, 4 per row; write: top-k key threshold, top-p key
 * threshold, 1 when top-p keeps everything at or above the top-k threshold, id).
 *
 * @module
 */
import { STATE_WORDS } from "./decode.ts";
import { ELEMENT_BYTES, foldGrid, type KernelSource } from "./common.ts";

// 512 threads: each pass over a row is latency-bound (one workgroup per row), so more threads mean fewer dependent
// loads each (at 256 the sampler was the largest kernel of a batch-1 step on the H100). The search sums and ids take
// 32 KiB of workgroup memory: beyond WebGPU's 16 KiB default, within the adapter limits nanolm requests (32 KiB on
// lavapipe, 48 KiB on NVIDIA); `sampleKernel` falls back to 256 threads below that.
const WG = 512;
/** Workgroup memory the 512-thread sampler needs; below it, 256 threads. */
export const SAMPLE_WORKGROUP_BYTES: number = (15 + 1) * WG * 4;
const T = 15; // candidate thresholds per search round

/** Shape of a {@linkcode sampleKernel}. */
export interface SampleSpec {
  /** Sequences (one workgroup each). */
  rows: number;
  /** Logits per row. */
  vocab: number;
  /** Slots of the ring of sampled ids that the host reads back. */
  ringSteps: number;
  /** Also advance each row's position (a decode step fed the previous token); false after a prefill. */
  advance: boolean;
  /** Threads per row: 512 (default; needs {@linkcode SAMPLE_WORKGROUP_BYTES} of workgroup memory) or 256. */
  workgroupSize?: 256 | 512;
}

/** Order-preserving map of f32 bits to u32, and the PCG hash. */
const helpers = `fn key(v: f32) -> u32 {
  let b = bitcast<u32>(v);
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}
fn pcg(v: u32) -> u32 {
  let s = v * 747796405u + 2891336453u;
  let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
  return (w >> 22u) ^ w;
}`;

function slots(f: (t: number) => string, sep = "\n"): string {
  return Array.from({ length: T }, (_, i) => f(i + 1)).join(sep);
}

/**
 * WGSL for one round of the 16-ary search: per-thread accumulation of `T` sums (`contribution(t)` per element),
 * a workgroup tree over them, and `lo += step * (largest t whose total passes)`.
 */
function searchRound(
  wg: number,
  perElement: string,
  contribution: (t: number) => string,
  passes: (sum: string) => string,
): string {
  return `    var s1 = 0.0;${slots((t) => t === 1 ? "" : ` var s${t} = 0.0;`, "")}
    for (var j = lid.x; j < VOCAB; j += ${wg}u) {
${perElement}
${slots((t) => `      s${t} += ${contribution(t)};`)}
    }
${slots((t) => `    red[${(t - 1) * wg}u + lid.x] = s${t};`)}
    workgroupBarrier();
    for (var half = ${wg / 2}u; half > 0u; half >>= 1u) {
      if (lid.x < half) {
${slots((t) => `        red[${(t - 1) * wg}u + lid.x] += red[${(t - 1) * wg}u + lid.x + half];`)}
      }
      workgroupBarrier();
    }
    var best = 0u;
${slots((t) => `    if (${passes(`red[${(t - 1) * wg}u]`)}) { best = ${t}u; }`)}
    workgroupBarrier();
    lo += best * stepv;`;
}

const NEG_INF = "bitcast<f32>(0xff800000u)";
/** Per-element WGSL of the search loops: the element's key, and its kept weight under top-k. */
const KEY_OF = `      let kj = key(logits[base + j]);`;
const WITH_WEIGHT = `${KEY_OF}
      let wj = select(0.0, exp((logits[base + j] - m) / temp), kj >= tk);`;

/** Bindings, workgroup memory, the helpers and `argmaxReduce` (value, id pairs; ties to the lower id). */
function declarations(vocab: number, wg: number): string {
  return `@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> params: array<u32>;
@group(0) @binding(2) var<storage, read_write> state: array<u32>;
@group(0) @binding(3) var<storage, read_write> tokens: array<i32>;
@group(0) @binding(4) var<storage, read_write> ring: array<i32>;
@group(0) @binding(5) var<storage, read_write> info: array<u32>;
const VOCAB = ${vocab}u;
var<workgroup> red: array<f32, ${T * wg}>;
var<workgroup> redi: array<u32, ${wg}>;
${helpers}
// Argmax over the workgroup of (value, id) pairs, ties to the lower id; called in uniform control flow.
fn argmaxReduce(lid: u32, v: f32, i: u32) -> u32 {
  red[lid] = v;
  redi[lid] = i;
  workgroupBarrier();
  for (var half = ${wg / 2}u; half > 0u; half >>= 1u) {
    if (lid < half) {
      let ov = red[lid + half];
      let oi = redi[lid + half];
      if (ov > red[lid] || (ov == red[lid] && oi < redi[lid])) {
        red[lid] = ov;
        redi[lid] = oi;
      }
    }
    workgroupBarrier();
  }
  let r = redi[0];
  workgroupBarrier();
  return select(r, 0u, r == 0xffffffffu);
}`;
}

/** The row's parameters and its argmax `top`, the greedy choice and the maximum logit the weights subtract. */
function greedy(wg: number): string {
  return `  let base = row * VOCAB;
  let temp = bitcast<f32>(params[1]);
  let topK = params[2];
  let topP = bitcast<f32>(params[3]);
  let draw = state[row * ${STATE_WORDS}u + 1u];
  var bv = ${NEG_INF};
  var bi = 0xffffffffu;
  for (var j = lid.x; j < VOCAB; j += ${wg}u) {
    let v = logits[base + j];
    if (v > bv) { bv = v; bi = j; }
  }
  let top = argmaxReduce(lid.x, bv, bi);`;
}

/** Top-k: the key threshold `tk`, the largest key with count(key >= tk) >= k (the k-th largest logit). */
function topKSearch(wg: number): string {
  return `    // Top-k: the largest key tk with count(key >= tk) >= k (the k-th largest logit).
    if (topK > 0u && topK < VOCAB) {
      var lo = 0u;
      for (var round = 0u; round < 8u; round++) {
        let shift = 28u - 4u * round;
        let stepv = 1u << shift;
${
    searchRound(
      wg,
      `${KEY_OF}
      let dj = select(0u, min((kj - lo) >> shift, 15u), kj >= lo);`,
      (t) => `select(0.0, 1.0, kj >= lo && dj >= ${t}u)`,
      (sum) => `${sum} >= f32(topK)`,
    ).replace(/^/gm, "    ")
  }
      }
      tk = lo;
    }`;
}

/** Top-p: the total kept weight, then the key threshold `tp` whose kept mass strictly above it reaches p. */
function topPSearch(wg: number): string {
  return `    // Top-p: the largest key tp whose kept mass strictly above it reaches p * total; kept ids have key > tp.
    if (topP < 1.0) {
      var tot = 0.0;
      for (var j = lid.x; j < VOCAB; j += ${wg}u) {
${WITH_WEIGHT}
        tot += wj;
      }
      red[lid.x] = tot;
      workgroupBarrier();
      for (var half = ${wg / 2}u; half > 0u; half >>= 1u) {
        if (lid.x < half) { red[lid.x] += red[lid.x + half]; }
        workgroupBarrier();
      }
      let goal = topP * red[0];
      workgroupBarrier();
      var lo = 0u;
      for (var round = 0u; round < 8u; round++) {
        let shift = 28u - 4u * round;
        let stepv = 1u << shift;
${
    searchRound(
      wg,
      `${WITH_WEIGHT}
      let dj = select(0u, min((kj - lo - 1u) >> shift, 15u), kj > lo);`,
      (t) => `select(0.0, wj, kj > lo && dj >= ${t}u)`,
      (sum) => `${sum} >= goal`,
    ).replace(/^/gm, "    ")
  }
      }
      tp = lo;
      pAll = 0u;
    }`;
}

/** The draw: Gumbel-max over the kept ids, with uniforms hashed from (seed, draw, row, id). */
function gumbelMax(wg: number): string {
  return `    // Gumbel-max over the kept ids.
    let seed = params[0];
    let h0 = pcg(seed ^ pcg(draw ^ pcg(row + 0x9e3779b9u)));
    var gv = ${NEG_INF};
    var gi = 0xffffffffu;
    for (var j = lid.x; j < VOCAB; j += ${wg}u) {
      let l = logits[base + j];
      let kj = key(l);
      if (kj >= tk && (pAll == 1u || kj > tp)) {
        let u = (f32(pcg(h0 ^ pcg(j)) >> 8u) + 0.5) * ${1 / 2 ** 24};
        let s = (l - m) / temp - log(-log(u));
        if (s > gv) { gv = s; gi = j; }
      }
    }
    tok = argmaxReduce(lid.x, gv, gi);`;
}

/** Thread 0 writes the id (next input, ring slot), the thresholds, and advances the row's state. */
function store(spec: SampleSpec): string {
  return `  if (lid.x == 0u) {
    tokens[row] = i32(tok);
    ring[(draw % ${spec.ringSteps}u) * ${spec.rows}u + row] = i32(tok);
    info[row * 4u] = tk;
    info[row * 4u + 1u] = tp;
    info[row * 4u + 2u] = pAll;
    info[row * 4u + 3u] = tok;
    state[row * ${STATE_WORDS}u + 1u] = draw + 1u;
    ${spec.advance ? `state[row * ${STATE_WORDS}u] = state[row * ${STATE_WORDS}u] + 1u;` : ""}
  }`;
}

/**
 * Generates the sampling kernel (see the module doc for the method and bindings): greedy argmax, then, at a
 * temperature above 0, the top-k and top-p thresholds and a Gumbel-max draw among the ids they keep. Grid: (rows).
 * Cost, of the greedy draw (the temperature is read on the GPU; sampling at a temperature makes the searches' further
 * passes over the row): a compare per logit; the logits, the parameters and each row's state read once, the id, ring slot,
 * four info words and the state written.
 *
 * @example
 * ```ts
 * import { sampleKernel } from "./sample.ts"; // kernels are internal: not exported by the package
 * const k = sampleKernel({ rows: 8, vocab: 10000, ringSteps: 16, advance: true });
 * if (k.name !== "sample_step" || k.workgroups[0] !== 8) throw new Error(`${k.name} ${k.workgroups}`);
 * ```
 */
export function sampleKernel(spec: SampleSpec): KernelSource {
  const { rows, vocab, ringSteps } = spec;
  const wg = spec.workgroupSize ?? WG;
  if (wg !== 256 && wg !== 512) throw new RangeError(`sampleKernel: workgroupSize must be 256 or 512, got ${wg}`);
  for (const [k, v] of Object.entries({ rows, vocab, ringSteps })) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`sampleKernel: ${k} must be an integer >= 1, got ${v}`);
  }
  const grid = foldGrid([rows]);
  return {
    name: spec.advance ? "sample_step" : "sample_prefill",
    workgroups: grid.workgroups,
    cost: {
      flops: rows * vocab,
      bytes: (rows * vocab + 4 + rows * STATE_WORDS + rows * (1 + 1 + 4 + (spec.advance ? 2 : 1))) * ELEMENT_BYTES,
    },
    source: `${declarations(vocab, wg)}
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
${grid.guard ? `  ${grid.guard}\n` : ""}  let row = ${grid.index[0]};
${greedy(wg)}
  var tok = top;
  var tk = 0u;
  var tp = 0u;
  var pAll = 1u;
  if (temp > 0.0) {
    let m = logits[base + top];
${topKSearch(wg)}
${topPSearch(wg)}
${gumbelMax(wg)}
  }
${store(spec)}
}
`,
  };
}

/**
 * The order-preserving u32 key of an f32 that the sampling kernel compares (host mirror, for tests and for
 * reading its `info` thresholds): id i is kept when `key(l_i) >= topK threshold` and, unless top-p keeps all,
 * `key(l_i) > topP threshold`.
 *
 * @example
 * ```ts
 * import { logitKey } from "./sample.ts"; // kernels are internal: not exported by the package
 * if (!(logitKey(-1) < logitKey(0) && logitKey(0) < logitKey(2))) throw new Error("keys out of order");
 * ```
 */
export function logitKey(v: number): number {
  const b = new Uint32Array(new Float32Array([v]).buffer)[0];
  return (b & 0x80000000 ? ~b : b | 0x80000000) >>> 0;
}
