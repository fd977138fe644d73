/**
 * AdamW (CS336 Algorithm 1: decoupled weight decay, bias correction) with global gradient-norm clipping, both
 * on the GPU with no host round trip: the clipping factor is computed into a one-element tensor that the fused
 * update kernel reads.
 *
 * @module
 */
import { adamwKernel, gradNormKernel, sumSquaresGroups, sumSquaresKernel } from "../../kernels/adamw.ts";
import { gpu } from "../gpu/backend.ts";
import { noGrad } from "../tensor/graph.ts";
import { fill } from "../tensor/ops/elementwise.ts";
import { empty, keep, type Tensor, tidy } from "../tensor/tensor.ts";

/**
 * Most tensors one sum-of-squares or update dispatch takes: past the device's binding limits, a bound on the size of
 * the generated kernel (a branch per tensor). The TinyStories model's 39 parameters fit in one of each.
 */
const MAX_TENSORS_PER_DISPATCH = 64;

/**
 * Hyperparameters of {@linkcode AdamW}. The defaults are the training config's (and the usual LM settings:
 * nanoGPT, CS336): lr 1e-3, betas (0.9, 0.95), eps 1e-8, weight decay 0.1.
 */
export interface AdamWOptions {
  /** Learning rate (can be changed per step). */
  lr?: number;
  /** Moment decay rates. */
  betas?: [number, number];
  /** Denominator epsilon. */
  eps?: number;
  /** Decoupled weight decay. */
  weightDecay?: number;
}

/** Per-step options of {@linkcode AdamW.step}. */
export interface StepOptions {
  /** Learning rate for this step (e.g. from a schedule). */
  lr?: number;
  /** Clip the global gradient L2 norm to this value (eps 1e-6, as CS336); no clipping when absent. */
  maxGradNorm?: number;
  /**
   * Return the pre-clipping global gradient norm as a one-element GPU tensor, which the caller then owns (read it in
   * a batch with the loss, never every step: a read waits for the GPU).
   */
  returnGradNorm?: boolean;
}

/**
 * The AdamW optimizer over named parameters.
 *
 * @example
 * ```ts
 * import { AdamW } from "@nanolm/nanolm/optim";
 * import { initGpu, mul, param, sum, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const w = param(tensor([1, -1]), "w");
 * const opt = new AdamW([w], { lr: 0.1, weightDecay: 0 });
 * sum(mul(w, w)).backward();
 * opt.step({ maxGradNorm: 1.0 }); // Adam's first step moves each weight by lr against its gradient's sign
 * opt.zeroGrad();
 * const [a, b] = await w.data();
 * if (Math.abs(a - 0.9) > 1e-5 || Math.abs(b + 0.9) > 1e-5) throw new Error(`${a} ${b}`);
 * ```
 */
export class AdamW {
  /** Parameters by name. */
  readonly params: Map<string, Tensor>;
  /** Hyperparameters. */
  readonly options: Required<AdamWOptions>;
  /** Steps taken (the t of bias correction). */
  t = 0;
  #m = new Map<string, Tensor>();
  #v = new Map<string, Tensor>();

  /** Creates the optimizer with zeroed moments for every parameter (each must require grad). */
  constructor(params: Map<string, Tensor> | Tensor[], options: AdamWOptions = {}) {
    this.params = params instanceof Map ? new Map(params) : new Map(params.map((p, i) => [p.name || `param${i}`, p]));
    const o = { lr: 1e-3, betas: [0.9, 0.95] as [number, number], eps: 1e-8, weightDecay: 0.1, ...options };
    if (!(o.lr >= 0)) throw new RangeError(`AdamW lr must be >= 0, got ${o.lr}`);
    if (o.betas.some((b) => !(b >= 0 && b < 1))) throw new RangeError(`AdamW betas must be in [0, 1), got ${o.betas}`);
    if (!(o.eps > 0)) throw new RangeError(`AdamW eps must be > 0, got ${o.eps}`);
    if (!(o.weightDecay >= 0)) throw new RangeError(`AdamW weightDecay must be >= 0, got ${o.weightDecay}`);
    this.options = o;
    for (const [name, p] of this.params) {
      if (!p.requiresGrad) throw new Error(`AdamW: parameter ${name} ${p.describe()} does not require grad`);
      this.#m.set(name, keep(fill(p.shape, 0)));
      this.#v.set(name, keep(fill(p.shape, 0)));
    }
  }

  /**
   * The global L2 norm of all gradients as a one-element GPU tensor (caller disposes). Parameters without a
   * gradient count as zero.
   */
  gradNorm(): Tensor {
    return this.#normAndClip().norm;
  }

  /**
   * The global gradient norm and, with `maxNorm`, the clipping factor as one-element GPU tensors (caller disposes):
   * partial sums of squares over as many gradients a dispatch as the device binds, then one kernel for the rest.
   */
  #normAndClip(maxNorm?: number): { norm: Tensor; clip: Tensor | null } {
    const grads = [...this.params.values()].map((p) => p.grad).filter((g): g is Tensor => g !== null);
    if (grads.length === 0) {
      return tidy(() => ({ norm: keep(fill([1], 0)), clip: maxNorm === undefined ? null : keep(fill([1], 1)) }));
    }
    const backend = gpu();
    const total = grads.reduce((sum, g) => sum + sumSquaresGroups(g.size), 0);
    const partials = empty([total]);
    // One binding is the output; a dispatch's workgroups stay within one grid dimension.
    const perDispatch = Math.max(1, Math.min(MAX_TENSORS_PER_DISPATCH, backend.storageBindings() - 1));
    let offset = 0;
    for (let i = 0; i < grads.length;) {
      const chunk = [grads[i++]];
      let groups = sumSquaresGroups(chunk[0].size);
      while (i < grads.length && chunk.length < perDispatch && groups + sumSquaresGroups(grads[i].size) <= 65535) {
        groups += sumSquaresGroups(grads[i].size);
        chunk.push(grads[i++]);
      }
      const k = sumSquaresKernel({ sizes: chunk.map((g) => g.size), offset });
      backend.run(k, [...chunk.map((g) => g.buffer), partials.buffer]);
      offset += k.workgroups[0];
    }
    const norm = empty([1]), clip = maxNorm === undefined ? null : empty([1]);
    const k = gradNormKernel({ partials: total, maxNorm });
    backend.run(k, clip ? [partials.buffer, norm.buffer, clip.buffer] : [partials.buffer, norm.buffer]);
    partials.dispose();
    return { norm, clip };
  }

  /**
   * Applies one update to every parameter that has a gradient, as `optimizer.step()` in PyTorch: nothing to dispose.
   * With `returnGradNorm`, returns the pre-clipping global gradient norm as a GPU tensor the caller owns.
   */
  step(opts?: StepOptions & { returnGradNorm?: false }): void;
  /** {@linkcode AdamW.step}, returning the pre-clipping global gradient norm (the caller disposes it). */
  step(opts: StepOptions & { returnGradNorm: true }): Tensor;
  step(opts: StepOptions = {}): Tensor | void {
    const lr = opts.lr ?? this.options.lr;
    if (!(lr >= 0)) throw new RangeError(`AdamW step lr must be >= 0, got ${lr}`);
    this.t++;
    const [b1, b2] = this.options.betas;
    const lrT = lr * Math.sqrt(1 - b2 ** this.t) / (1 - b1 ** this.t);
    const uniforms = new Float32Array([lr, lrT, b1, b2, this.options.eps, this.options.weightDecay]);
    return noGrad(() => {
      const { norm, clip: clipped } = this.#normAndClip(opts.maxGradNorm);
      const clip = clipped ?? fill([1], 1);
      const backend = gpu();
      // Several parameters per dispatch: 4 buffers each, plus the clip factor (the uniform block is separate).
      const perDispatch = Math.max(
        1,
        Math.min(MAX_TENSORS_PER_DISPATCH, Math.floor((backend.storageBindings(1) - 1) / 4)),
      );
      const live = [...this.params].filter(([, p]) => p.grad);
      for (let i = 0; i < live.length; i += perDispatch) {
        const chunk = live.slice(i, i + perDispatch);
        const k = adamwKernel({ sizes: chunk.map(([, p]) => p.size) });
        const buffers = chunk.flatMap(([name, p]) => [
          p.buffer,
          p.grad!.buffer,
          this.#m.get(name)!.buffer,
          this.#v.get(name)!.buffer,
        ]);
        backend.run(k, [...buffers, clip.buffer], uniforms.buffer);
      }
      clip.dispose();
      if (opts.returnGradNorm) return norm;
      norm.dispose();
    });
  }

  /** Drops all gradients (frees their memory). */
  zeroGrad(): void {
    for (const p of this.params.values()) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** Optimizer state for checkpoints: `m.<name>`, `v.<name>` tensors (owned by the optimizer). */
  stateTensors(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [name, t] of this.#m) out.set(`m.${name}`, t);
    for (const [name, t] of this.#v) out.set(`v.${name}`, t);
    return out;
  }

  /**
   * Restores moments saved by {@linkcode AdamW.stateTensors} (as host arrays keyed `m.<name>` / `v.<name>`) and
   * the step count. Every parameter's moments must be present with the right size.
   */
  loadState(state: Map<string, Float32Array>, t: number): void {
    if (!Number.isInteger(t) || t < 0) throw new RangeError(`AdamW step count must be an integer >= 0, got ${t}`);
    for (const [key, tensor] of this.stateTensors()) {
      const data = state.get(key);
      if (!data) throw new Error(`AdamW state is missing ${key}`);
      if (data.length !== tensor.size) {
        throw new Error(
          `AdamW state ${key} has ${data.length} values, expected ${tensor.size} for ${tensor.describe()}`,
        );
      }
      gpu().write(tensor.buffer, data);
    }
    this.t = t;
  }

  /** Frees the moment buffers. */
  dispose(): void {
    for (const t of [...this.#m.values(), ...this.#v.values()]) t.dispose();
    this.#m.clear();
    this.#v.clear();
  }
}
