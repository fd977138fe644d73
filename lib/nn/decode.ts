/**
 * What a layer's decode step needs besides its own weights: the rows decoded together, the per-sequence state on
 * the GPU (positions that the sampler advances), a layer's KV cache, and scratch buffers for activations.
 *
 * Every layer of the model has a `decodeStep` beside its `forward` that computes the same function for one new
 * token per sequence, with the fused kernels of `kernels/decode.ts` writing into these buffers rather than into
 * new tensors. A decode step only issues dispatches (through the backend's `run`), so a decoder records it once
 * with `Backend.record` and replays it every step: the buffers below are fixed for the recording's life.
 *
 * @module
 */
import { gpu, type GpuBuffer } from "../gpu/backend.ts";

/** One layer's KV cache: keys and values of every sequence, (rows, heads, maxLen, headDim) f32 each. */
export interface LayerKvCache {
  /** Keys after RoPE. */
  readonly keys: GpuBuffer;
  /** Values. */
  readonly values: GpuBuffer;
}

/** The buffers and sizes a decode step works with (see the module doc). */
export interface DecodeContext {
  /** Sequences decoded together: every activation is (rows, width). */
  readonly rows: number;
  /** Cache rows per sequence (the context length): positions lie in [0, maxLen). */
  readonly maxLen: number;
  /**
   * Per sequence `STATE_WORDS` u32 words (kernels/decode.ts): the position of the token being fed, which the
   * attention appends at and attends up to, and the sampler's draw counter.
   */
  readonly state: GpuBuffer;
  /** Keys the decode attention scores per tile (its default when absent). */
  readonly attentionTile?: number;
  /**
   * A scratch buffer of at least `bytes` bytes under `name`: every call with one name gets the same buffer, so
   * layers that run one after another share their activations' storage. Allocated at the first call.
   */
  scratch(name: string, bytes: number): GpuBuffer;
  /** A buffer holding `data()` under `name`, uploaded at the first call (a RoPE table, shared by the layers). */
  constant(name: string, data: () => Float32Array): GpuBuffer;
}

/** Options of {@linkcode DecodeWorkspace}. */
export interface DecodeWorkspaceOptions {
  /** Sequences decoded together. */
  rows: number;
  /** Cache rows per sequence. */
  maxLen: number;
  /** The per-sequence state buffer (owned by the caller). */
  state: GpuBuffer;
  /** Keys the decode attention scores per tile. */
  attentionTile?: number;
}

/**
 * A {@linkcode DecodeContext} that owns its scratch and constant buffers, allocated on first use (while a decode
 * step is recorded) and freed by {@linkcode DecodeWorkspace.dispose}.
 *
 * @example
 * ```ts
 * import { initGpu } from "@nanolm/nanolm/gpu";
 * import { tensor, tidy } from "@nanolm/nanolm/tensor";
 * import { DecodeWorkspace, TransformerLM } from "@nanolm/nanolm/nn";
 * const backend = await initGpu();
 * const model = new TransformerLM({ vocabSize: 32, contextLength: 8, dModel: 16, numLayers: 1, numHeads: 2 });
 * // One sequence at position 0 (4 state words: position, draws, 0, 0), an empty cache of 8 rows, token 7.
 * const state = backend.alloc(16), ids = backend.alloc(4), logits = backend.alloc(32 * 4);
 * const cache = { keys: backend.alloc(8 * 16 * 4), values: backend.alloc(8 * 16 * 4) };
 * backend.write(state, new Uint32Array(4));
 * backend.write(ids, new Int32Array([7]));
 * const ws = new DecodeWorkspace({ rows: 1, maxLen: 8, state });
 * const step = backend.record(() => model.decodeStep(ids, logits, [cache], ws));
 * backend.replay(step);
 * const got = new Float32Array(await backend.read(logits, 32 * 4));
 * const want = await tidy(() => model.forward(tensor(new Int32Array([7]), { shape: [1, 1] }))).data();
 * if (want.some((w, i) => Math.abs(got[i] - w) > 1e-4)) throw new Error("decode step differs from forward");
 * step.dispose();
 * ws.dispose();
 * for (const b of [state, ids, logits, cache.keys, cache.values]) backend.free(b);
 * ```
 */
export class DecodeWorkspace implements DecodeContext {
  /** Sequences decoded together. */
  readonly rows: number;
  /** Cache rows per sequence. */
  readonly maxLen: number;
  /** The per-sequence state buffer. */
  readonly state: GpuBuffer;
  /** Keys the decode attention scores per tile. */
  readonly attentionTile?: number;
  readonly #buffers = new Map<string, GpuBuffer>();

  /** Holds the sizes and the state buffer; allocates nothing yet. */
  constructor(options: DecodeWorkspaceOptions) {
    this.rows = options.rows;
    this.maxLen = options.maxLen;
    this.state = options.state;
    this.attentionTile = options.attentionTile;
  }

  /** See {@linkcode DecodeContext.scratch}; a later call asking for more bytes than the first throws. */
  scratch(name: string, bytes: number): GpuBuffer {
    const key = `scratch:${name}`;
    const buf = this.#buffers.get(key);
    if (buf) {
      if (bytes > buf.bytes) {
        throw new RangeError(`DecodeWorkspace: scratch "${name}" holds ${buf.bytes} bytes; ${bytes} were asked for`);
      }
      return buf;
    }
    const fresh = gpu().alloc(bytes);
    this.#buffers.set(key, fresh);
    return fresh;
  }

  /** See {@linkcode DecodeContext.constant}. */
  constant(name: string, data: () => Float32Array): GpuBuffer {
    const key = `constant:${name}`;
    let buf = this.#buffers.get(key);
    if (!buf) {
      const values = data();
      buf = gpu().alloc(values.byteLength);
      gpu().write(buf, values);
      this.#buffers.set(key, buf);
    }
    return buf;
  }

  /** Frees every buffer the workspace allocated (work already submitted still completes). Safe to call twice. */
  dispose(): void {
    for (const buf of this.#buffers.values()) gpu().free(buf);
    this.#buffers.clear();
  }
}
