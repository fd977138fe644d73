/**
 * `deno task sample`: continue a prompt with a trained checkpoint, printing text as it is generated.
 *
 * The checkpoint's metadata holds the model config and the path of its tokenizer (see `Trainer.saveCheckpoint`);
 * `--tokenizer` overrides the latter. Decoding runs on the GPU with a KV cache and GPU sampling
 * (`generateStream`); it stops at `<|endoftext|>` when the tokenizer has it.
 *
 * ```sh
 * deno task sample --checkpoint runs/default/checkpoint.safetensors --prompt "Call me" --max-tokens 200 --top-p 0.9
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  END_OF_TEXT,
  generateStream,
  initGpu,
  parseModelConfig,
  readCheckpointFile,
  Tokenizer,
  TransformerLM,
} from "../mod.ts";

const HELP = `Usage: deno task sample [options]

  --checkpoint <path>    checkpoint (default runs/default/checkpoint.safetensors)
  --prompt <text>        text to continue (default: start from <|endoftext|>)
  --tokenizer <path>     tokenizer file (default: the one recorded in the checkpoint)
  --max-tokens <n>       new tokens at most (default 256)
  --temperature <t>      softmax temperature, 0 = greedy (default 0.8)
  --top-k <k>            keep the k most likely tokens (default 0 = all)
  --top-p <p>            nucleus sampling threshold (default 0.95)
  --seed <n>             sampling seed (default 0)
  --stop <text>          also stop at this string
  --help                 this text
`;

const { values } = parseArgs({
  args: Deno.args,
  options: {
    checkpoint: { type: "string", default: "runs/default/checkpoint.safetensors" },
    prompt: { type: "string", default: "" },
    tokenizer: { type: "string" },
    "max-tokens": { type: "string", default: "256" },
    temperature: { type: "string", default: "0.8" },
    "top-k": { type: "string", default: "0" },
    "top-p": { type: "string", default: "0.95" },
    seed: { type: "string", default: "0" },
    stop: { type: "string" },
    help: { type: "boolean" },
  },
});
if (values.help) {
  console.log(HELP);
  Deno.exit(0);
}

function number(flag: string, raw: string, integer: boolean): number {
  const v = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(v) || (integer && !Number.isInteger(v))) {
    console.error(`--${flag}: expected ${integer ? "an integer" : "a number"}, got ${JSON.stringify(raw)}`);
    Deno.exit(2);
  }
  return v;
}

const path = values.checkpoint!;
let ckpt;
try {
  ckpt = await readCheckpointFile(path);
} catch (e) {
  console.error(`Cannot read checkpoint ${path}: ${(e as Error).message}\n(train one with \`deno task train\`)`);
  Deno.exit(1);
}
const config = ckpt.config as { model?: unknown } | undefined;
if (!config?.model) {
  console.error(`Checkpoint ${path} has no model config in its metadata`);
  Deno.exit(1);
}
const tokenizerPath = values.tokenizer ?? ckpt.tokenizer;
if (!tokenizerPath) {
  console.error(`Checkpoint ${path} names no tokenizer: pass --tokenizer <path>`);
  Deno.exit(1);
}
// A relative path recorded at training time is relative to where training ran; try the checkpoint's folder too.
const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : ".";
const candidates = [tokenizerPath, `${dir}/${tokenizerPath.split("/").pop()}`];
const found = candidates.find((p) => {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
});
if (!found) {
  console.error(`Tokenizer not found at ${candidates.join(" or ")}: pass --tokenizer <path>`);
  Deno.exit(1);
}
const tokenizer = Tokenizer.load(found);

await initGpu();
const model = new TransformerLM(parseModelConfig(config.model as Parameters<typeof parseModelConfig>[0]));
model.loadStateDict(ckpt.model);

const eot = tokenizer.specialTokens.get(END_OF_TEXT);
const prompt = values.prompt!;
const ids = prompt ? tokenizer.encode(prompt) : eot !== undefined ? [eot] : [];
if (ids.length === 0) {
  console.error("The prompt is empty and the tokenizer has no <|endoftext|> to start from: pass --prompt");
  Deno.exit(2);
}

const out = Deno.stdout;
const encoder = new TextEncoder();
await out.write(encoder.encode(prompt));
const start = performance.now();
let count = 0;
for await (
  const e of generateStream(model, ids, {
    tokenizer,
    maxNewTokens: number("max-tokens", values["max-tokens"]!, true),
    temperature: number("temperature", values.temperature!, false),
    topK: number("top-k", values["top-k"]!, true),
    topP: number("top-p", values["top-p"]!, false),
    seed: number("seed", values.seed!, true),
    stopTokens: eot !== undefined ? [eot] : [],
    stopStrings: values.stop ? [values.stop] : [],
  })
) {
  count++;
  if (e.text) await out.write(encoder.encode(e.text));
}
const seconds = (performance.now() - start) / 1000;
console.error(`\n\n[${count} tokens in ${seconds.toFixed(2)} s, ${(count / seconds).toFixed(0)} tokens/s]`);
