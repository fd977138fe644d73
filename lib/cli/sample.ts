/**
 * `deno task sample`: continue a prompt with a trained checkpoint, printing text as it is generated.
 *
 * The checkpoint's metadata holds the model config and the path of its tokenizer (see `Trainer.saveCheckpoint`);
 * that path is only followed inside the checkpoint's folder, and `--tokenizer` overrides it. Decoding runs on the
 * GPU with a KV cache and GPU sampling (`generateStream`); it stops at `<|endoftext|>` when the tokenizer has it,
 * and only samples ids the tokenizer can decode. Every flag is checked before anything is loaded; any error is one
 * `nanolm: ...` line. Ctrl-C stops generation and exits with status 130.
 *
 * @example
 * ```sh
 * deno task sample --checkpoint runs/default/best.safetensors --prompt "Call me" --max-tokens 200 --top-p 0.9
 * deno run -A jsr:@nanolm/nanolm/cli/sample --help
 * ```
 *
 * @module
 */
import { type CheckpointState, readCheckpointFile } from "../io/mod.ts";
import {
  ConfigError,
  END_OF_TEXT,
  generateStream,
  initGpu,
  type ModelConfig,
  parseModelConfig,
  type Tokenizer,
  TransformerLM,
} from "../../mod.ts";
import { InterruptGuard } from "./interrupt.ts";
import { type FlagSpec, helpText, interruptedExitCode, parseFlags, runMain } from "./flags.ts";
import { checkInputFile, loadTokenizerFile } from "./input_files.ts";
import { GL_FALLBACK_ADVICE, onGlFallback } from "./vulkan.ts";
import { choosePath } from "../io/paths.ts";

const DEFAULT_RUN = "runs/default";

const FLAGS = [
  {
    name: "checkpoint",
    type: "string",
    valueName: "path",
    defaultText: `${DEFAULT_RUN}/best.safetensors if there, else ${DEFAULT_RUN}/checkpoint.safetensors`,
    help: "checkpoint to sample from",
  },
  {
    name: "prompt",
    type: "string",
    valueName: "text",
    default: "",
    help: "text to continue; empty starts at <|endoftext|>",
  },
  {
    name: "tokenizer",
    type: "string",
    valueName: "path",
    defaultText: "the one recorded in the checkpoint",
    help: "tokenizer file",
  },
  { name: "max-tokens", type: "int", min: 1, default: 256, help: "new tokens at most" },
  { name: "temperature", type: "float", min: 0, default: 0.8, help: "softmax temperature, 0 = greedy" },
  { name: "top-k", type: "int", min: 0, default: 0, help: "keep the k most likely tokens, 0 = all" },
  {
    name: "top-p",
    type: "float",
    min: 0,
    minExclusive: true,
    max: 1,
    default: 0.95,
    help: "nucleus sampling threshold, 1 = all",
  },
  { name: "seed", type: "int", default: 0, help: "sampling seed" },
  { name: "stop", type: "string", valueName: "text", help: "also stop at this string" },
] as const satisfies readonly FlagSpec[];

const USAGE = "deno task sample [flags]";
const DESCRIPTION = "Continues a prompt with a trained checkpoint, printing the text as it is generated.";

/** The model config of a checkpoint, checked against its weights before any GPU memory is spent on it. */
function checkpointModel(ckpt: CheckpointState, path: string): ModelConfig {
  const saved = (ckpt.config as { model?: unknown } | undefined)?.model;
  if (saved === undefined) throw new Error(`checkpoint ${path} has no model config in its metadata`);
  let config: ModelConfig;
  try {
    config = parseModelConfig(saved);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    const detail = e.issues.map((i) => `${i.path || "(top level)"}: ${i.message}`).join("; ");
    throw new Error(`checkpoint ${path} has an invalid model config in its metadata (${detail})`);
  }
  const mismatch = (what: string) =>
    new Error(`checkpoint ${path}: its weights do not match its model config (${what})`);
  const embedding = ckpt.model.get("token_embeddings.weight");
  if (!embedding) throw mismatch("no token_embeddings.weight");
  const expected = [config.vocabSize, config.dModel];
  if (embedding.shape.join() !== expected.join()) {
    throw mismatch(`token_embeddings.weight is [${embedding.shape}], vocabSize x dModel is [${expected}]`);
  }
  const layers = new Set([...ckpt.model.keys()].flatMap((k) => /^layers\.(\d+)\./.exec(k)?.[1] ?? []));
  if (layers.size !== config.numLayers) {
    throw mismatch(`${layers.size} layers of weights, numLayers is ${config.numLayers}`);
  }
  return config;
}

/**
 * The user's --tokenizer as given, else the one the checkpoint records, followed only inside its folder; with the
 * path it was read from.
 */
async function tokenizerFor(
  flag: string | undefined,
  ckpt: CheckpointState,
  path: string,
): Promise<{ tokenizer: Tokenizer; file: string }> {
  if (flag !== undefined) await checkInputFile(flag, "tokenizer", "check --tokenizer");
  const file = choosePath({ given: flag, recorded: ckpt.tokenizer, checkpoint: path, key: "tokenizer" });
  const fix = flag === undefined ? "pass --tokenizer PATH" : "check --tokenizer";
  return { tokenizer: loadTokenizerFile(file, fix), file };
}

/** The default checkpoint: the run's best weights when it kept them, else its latest state. */
async function defaultCheckpoint(): Promise<string> {
  const best = `${DEFAULT_RUN}/best.safetensors`;
  return await Deno.stat(best).then(() => best, () => `${DEFAULT_RUN}/checkpoint.safetensors`);
}

const encoder = new TextEncoder();

/** Writes all of `text` to stdout; false when the reader has gone (a closed pipe). */
async function emit(text: string): Promise<boolean> {
  const bytes = encoder.encode(text);
  try {
    for (let done = 0; done < bytes.length;) done += await Deno.stdout.write(bytes.subarray(done));
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.BrokenPipe) return false;
    throw e;
  }
}

async function main(): Promise<number> {
  const { help, values: flags } = parseFlags(Deno.args, FLAGS);
  if (help) {
    console.log(helpText(USAGE, DESCRIPTION, FLAGS));
    return 0;
  }
  const path = flags.checkpoint ?? await defaultCheckpoint();
  await checkInputFile(path, "checkpoint", "train one with `deno task train`, or pass --checkpoint <path>");
  const ckpt = await readCheckpointFile(path);
  const config = checkpointModel(ckpt, path);
  const { tokenizer, file: tokenizerFile } = await tokenizerFor(flags.tokenizer, ckpt, path);
  const eot = tokenizer.specialTokens.get(END_OF_TEXT);
  const prompt = flags.prompt!;
  const ids = prompt ? tokenizer.encode(prompt) : eot !== undefined ? [eot] : [];
  if (ids.length === 0) {
    throw new Error("the prompt is empty and the tokenizer has no <|endoftext|> to start from: pass --prompt <text>");
  }
  const outside = ids.find((id) => id >= config.vocabSize);
  if (outside !== undefined) {
    throw new Error(
      `tokenizer ${tokenizerFile} gives the prompt id ${outside}, and checkpoint ${path} has a vocabulary of ` +
        `${config.vocabSize} ids: pass the tokenizer the model was trained with (--tokenizer)`,
    );
  }

  const backend = await initGpu();
  if (onGlFallback(backend.info)) throw new Error(GL_FALLBACK_ADVICE);
  const model = new TransformerLM(config);
  try {
    model.loadStateDict(ckpt.model);
  } catch (e) {
    throw new Error(`checkpoint ${path}: its weights do not match its model config (${(e as Error).message})`);
  }

  // From here on, Ctrl-C ends generation gracefully (the text so far, the stats line) with status 130.
  const guard = new InterruptGuard();
  let reading = await emit(prompt);
  const start = performance.now();
  let count = 0;
  for await (
    const e of generateStream(model, ids, {
      tokenizer,
      vocabLimit: Math.min(config.vocabSize, tokenizer.vocabSize),
      maxNewTokens: flags["max-tokens"],
      temperature: flags.temperature,
      topK: flags["top-k"],
      topP: flags["top-p"],
      seed: flags.seed,
      stopTokens: eot !== undefined ? [eot] : [],
      stopStrings: flags.stop ? [flags.stop] : [],
    })
  ) {
    count++;
    if (e.text && reading) reading = await emit(e.text);
    if (guard.requested || !reading) break;
  }
  guard.dispose();
  // A reader that stopped early (`| head`) asked for no more: nothing went wrong.
  if (!reading) return 0;
  const seconds = (performance.now() - start) / 1000;
  console.error(`\n\n[${count} tokens in ${seconds.toFixed(2)} s, ${(count / seconds).toFixed(0)} tokens/s]`);
  return guard.requested ? interruptedExitCode(guard.signal) : 0;
}

await runMain(main);
