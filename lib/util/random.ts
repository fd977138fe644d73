/**
 * Seeded pseudo-random numbers shared by tensor initialisation, data sampling and decoding.
 *
 * The generator is xoshiro128** seeded through splitmix32: fast in JavaScript (32-bit integer arithmetic only),
 * statistically solid for ML use, and its whole state is four 32-bit words, so a checkpoint can store it and a
 * resumed run continues the exact same stream.
 *
 * @module
 */

/** The serialisable state of a {@linkcode Rng}: four unsigned 32-bit words. */
export type RngState = [number, number, number, number];

function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/**
 * A reproducible random number generator (xoshiro128**).
 *
 * @example
 * ```ts
 * import { Rng } from "@nanolm/nanolm";
 * const rng = new Rng(42);
 * const u = rng.uniform(); // in [0, 1)
 * if (!(u >= 0 && u < 1)) throw new Error(`${u} outside [0, 1)`);
 * if (new Rng(42).uniform() !== u) throw new Error("the same seed gave another stream");
 * // A checkpoint stores the state; restoring it continues the same stream.
 * const saved = Rng.fromState(rng.state());
 * if (saved.int(1000) !== rng.int(1000)) throw new Error("the restored state diverged");
 * ```
 */
export class Rng {
  #s: Uint32Array = new Uint32Array(4);

  /** Creates a generator from an integer seed (any safe integer; the same seed gives the same stream). */
  constructor(seed = 0) {
    if (!Number.isSafeInteger(seed)) {
      throw new TypeError(`Rng seed must be a safe integer, got ${seed}`);
    }
    const mix = splitmix32((seed >>> 0) ^ Math.floor(seed / 2 ** 32));
    for (let i = 0; i < 4; i++) this.#s[i] = mix();
    if ((this.#s[0] | this.#s[1] | this.#s[2] | this.#s[3]) === 0) this.#s[0] = 1;
  }

  /** Restores a generator from {@linkcode Rng.state}. */
  static fromState(state: RngState): Rng {
    if (
      !Array.isArray(state) || state.length !== 4 || state.some((w) => !Number.isInteger(w) || w < 0 || w > 0xffffffff)
    ) {
      throw new TypeError(`Rng state must be four unsigned 32-bit integers, got ${JSON.stringify(state)}`);
    }
    const rng = new Rng(0);
    rng.#s.set(state);
    return rng;
  }

  /** The current state, for checkpoints: `Rng.fromState(rng.state())` continues the same stream. */
  state(): RngState {
    return [this.#s[0], this.#s[1], this.#s[2], this.#s[3]];
  }

  /** The next unsigned 32-bit integer. */
  nextUint32(): number {
    const s = this.#s;
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** A float uniform in [0, 1) with 53 random bits. */
  uniform(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** An integer uniform in [0, n), without modulo bias. */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 2 ** 32) {
      throw new RangeError(`Rng.int bound must be an integer in [1, 2^32], got ${n}`);
    }
    if (n <= 2 ** 26) {
      // Rejection sampling on 32 bits keeps the result exactly uniform.
      const limit = Math.floor(2 ** 32 / n) * n;
      let x: number;
      do x = this.nextUint32(); while (x >= limit);
      return x % n;
    }
    return Math.floor(this.uniform() * n);
  }

  /**
   * A standard normal sample (Box-Muller). The second Box-Muller value is not cached, so that
   * {@linkcode Rng.state} alone captures the whole stream.
   */
  normal(): number {
    let u = 0;
    while (u === 0) u = this.uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.uniform());
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
