/**
 * A plain float64 CPU reference of the CS336 TransformerLM forward pass, cross-entropy, gradient clipping and
 * AdamW, written independently of both PyTorch and our WebGPU kernels. Tests use it to check the PyTorch golden
 * files and can use it to check kernels on shapes the golden files do not cover. Slow on purpose: plain loops.
 *
 * @module
 */

/** Weights by CS336 state-dict name, row-major, with shapes. */
export type Weights = Map<string, { shape: number[]; data: ArrayLike<number> }>;

/** The shape fields the reference needs. */
export interface ReferenceConfig {
  /** V. */
  vocabSize: number;
  /** d. */
  dModel: number;
  /** L. */
  numLayers: number;
  /** h. */
  numHeads: number;
  /** d_ff. */
  dFf: number;
  /** RoPE Θ. */
  ropeTheta: number;
  /** RMSNorm ε (default 1e-5). */
  normEps?: number;
}

function get(w: Weights, name: string): ArrayLike<number> {
  const t = w.get(name);
  if (!t) throw new Error(`Reference model is missing weight ${name}`);
  return t.data;
}

/** y (T×out) = x (T×in) · Wᵀ with W (out×in). */
function linear(x: Float64Array, T: number, dIn: number, w: ArrayLike<number>, dOut: number): Float64Array {
  const y = new Float64Array(T * dOut);
  for (let t = 0; t < T; t++) {
    for (let o = 0; o < dOut; o++) {
      let s = 0;
      for (let i = 0; i < dIn; i++) s += x[t * dIn + i] * w[o * dIn + i];
      y[t * dOut + o] = s;
    }
  }
  return y;
}

function rmsNorm(x: Float64Array, T: number, d: number, g: ArrayLike<number>, eps: number): Float64Array {
  const y = new Float64Array(T * d);
  for (let t = 0; t < T; t++) {
    let ss = 0;
    for (let i = 0; i < d; i++) ss += x[t * d + i] ** 2;
    const inv = 1 / Math.sqrt(ss / d + eps);
    for (let i = 0; i < d; i++) y[t * d + i] = x[t * d + i] * inv * g[i];
  }
  return y;
}

/** Rotates pairs (2k, 2k+1) of each head's slice of row t by t / Θ^(2k/dh), in place. */
function rope(x: Float64Array, T: number, h: number, dh: number, theta: number): void {
  for (let t = 0; t < T; t++) {
    for (let head = 0; head < h; head++) {
      for (let k = 0; k < dh / 2; k++) {
        const angle = t / theta ** ((2 * k) / dh);
        const c = Math.cos(angle), s = Math.sin(angle);
        const base = t * h * dh + head * dh + 2 * k;
        const a = x[base], b = x[base + 1];
        x[base] = a * c - b * s;
        x[base + 1] = a * s + b * c;
      }
    }
  }
}

function attention(x: Float64Array, T: number, cfg: ReferenceConfig, w: Weights, prefix: string): Float64Array {
  const d = cfg.dModel, h = cfg.numHeads, dh = d / h;
  const q = linear(x, T, d, get(w, `${prefix}.q_proj.weight`), d);
  const k = linear(x, T, d, get(w, `${prefix}.k_proj.weight`), d);
  const v = linear(x, T, d, get(w, `${prefix}.v_proj.weight`), d);
  rope(q, T, h, dh, cfg.ropeTheta);
  rope(k, T, h, dh, cfg.ropeTheta);
  const out = new Float64Array(T * d);
  const scores = new Float64Array(T);
  for (let head = 0; head < h; head++) {
    for (let i = 0; i < T; i++) {
      let max = -Infinity;
      for (let j = 0; j <= i; j++) {
        let s = 0;
        for (let c = 0; c < dh; c++) s += q[i * d + head * dh + c] * k[j * d + head * dh + c];
        scores[j] = s / Math.sqrt(dh);
        max = Math.max(max, scores[j]);
      }
      let sum = 0;
      for (let j = 0; j <= i; j++) sum += scores[j] = Math.exp(scores[j] - max);
      for (let j = 0; j <= i; j++) {
        const p = scores[j] / sum;
        for (let c = 0; c < dh; c++) out[i * d + head * dh + c] += p * v[j * d + head * dh + c];
      }
    }
  }
  return linear(out, T, d, get(w, `${prefix}.output_proj.weight`), d);
}

function swiglu(x: Float64Array, T: number, cfg: ReferenceConfig, w: Weights, prefix: string): Float64Array {
  const d = cfg.dModel, f = cfg.dFf;
  const a = linear(x, T, d, get(w, `${prefix}.w1.weight`), f);
  const b = linear(x, T, d, get(w, `${prefix}.w3.weight`), f);
  for (let i = 0; i < a.length; i++) a[i] = (a[i] / (1 + Math.exp(-a[i]))) * b[i];
  return linear(a, T, f, get(w, `${prefix}.w2.weight`), d);
}

/**
 * Logits (T×V, row-major) of one sequence under the pre-norm CS336 TransformerLM.
 *
 * @example
 * ```ts ignore
 * const logits = referenceLogits(weights, config, [1, 2, 3]);
 * ```
 */
export function referenceLogits(weights: Weights, cfg: ReferenceConfig, ids: ArrayLike<number>): Float64Array {
  const T = ids.length, d = cfg.dModel, eps = cfg.normEps ?? 1e-5;
  const emb = get(weights, "token_embeddings.weight");
  let x: Float64Array = new Float64Array(T * d);
  for (let t = 0; t < T; t++) for (let i = 0; i < d; i++) x[t * d + i] = emb[ids[t] * d + i];
  for (let l = 0; l < cfg.numLayers; l++) {
    const a = attention(
      rmsNorm(x, T, d, get(weights, `layers.${l}.ln1.weight`), eps),
      T,
      cfg,
      weights,
      `layers.${l}.attn`,
    );
    for (let i = 0; i < x.length; i++) x[i] += a[i];
    const f = swiglu(rmsNorm(x, T, d, get(weights, `layers.${l}.ln2.weight`), eps), T, cfg, weights, `layers.${l}.ffn`);
    for (let i = 0; i < x.length; i++) x[i] += f[i];
  }
  x = rmsNorm(x, T, d, get(weights, "ln_final.weight"), eps);
  return linear(x, T, d, get(weights, "lm_head.weight"), cfg.vocabSize);
}

/** Mean cross-entropy of logits (N×V) against targets (N), with the log-sum-exp shifted by the row max. */
export function referenceCrossEntropy(logits: ArrayLike<number>, targets: ArrayLike<number>, V: number): number {
  let total = 0;
  for (let n = 0; n < targets.length; n++) {
    let max = -Infinity;
    for (let v = 0; v < V; v++) max = Math.max(max, logits[n * V + v]);
    let sum = 0;
    for (let v = 0; v < V; v++) sum += Math.exp(logits[n * V + v] - max);
    total += max + Math.log(sum) - logits[n * V + targets[n]];
  }
  return total / targets.length;
}

/** AdamW hyper-parameters (CS336 Algorithm 1) and the clipping threshold. */
export interface ReferenceAdamW {
  /** α. */
  lr: number;
  /** β1. */
  beta1: number;
  /** β2. */
  beta2: number;
  /** ε. */
  eps: number;
  /** λ. */
  weightDecay: number;
  /** Global L2 gradient-norm limit (clipping divides by norm + 1e-6). */
  maxNorm: number;
}

/**
 * One clipped AdamW step at step number `t` (1-based), in place on `params`, `m`, `v`; returns the pre-clip norm.
 */
export function referenceAdamWStep(
  params: Map<string, Float64Array>,
  grads: Map<string, ArrayLike<number>>,
  state: { m: Map<string, Float64Array>; v: Map<string, Float64Array>; t: number },
  hp: ReferenceAdamW,
): number {
  let sq = 0;
  for (const g of grads.values()) for (let i = 0; i < g.length; i++) sq += g[i] * g[i];
  const norm = Math.sqrt(sq);
  const scale = norm > hp.maxNorm ? hp.maxNorm / (norm + 1e-6) : 1;
  const t = state.t;
  const lrT = (hp.lr * Math.sqrt(1 - hp.beta2 ** t)) / (1 - hp.beta1 ** t);
  for (const [name, p] of params) {
    const g = grads.get(name)!;
    const m = state.m.get(name)!, v = state.v.get(name)!;
    for (let i = 0; i < p.length; i++) {
      const gi = g[i] * scale;
      m[i] = hp.beta1 * m[i] + (1 - hp.beta1) * gi;
      v[i] = hp.beta2 * v[i] + (1 - hp.beta2) * gi * gi;
      p[i] -= (lrT * m[i]) / (Math.sqrt(v[i]) + hp.eps);
      p[i] -= hp.lr * hp.weightDecay * p[i];
    }
  }
  return norm;
}
