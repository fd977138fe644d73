/**
 * The generated WGSL of every generator and matmul plan in `kernel_corpus.ts` is byte-identical to the recorded
 * corpus: the kernels are what the GPU runs, so a refactor that keeps them identical keeps every speed measurement.
 * A deliberate kernel change regenerates the golden file (`deno run -A tests/kernel_corpus.ts --write`).
 */
import { corpusHashes, GOLDEN } from "./kernel_corpus.ts";

Deno.test("generated kernels and matmul plans are byte-identical to tests/golden/kernel_wgsl.json", async () => {
  const golden: Record<string, string> = JSON.parse(await Deno.readTextFile(GOLDEN));
  const hashes = await corpusHashes();
  const changed = Object.keys(golden).filter((label) => label in hashes && hashes[label] !== golden[label]);
  const missing = Object.keys(golden).filter((label) => !(label in hashes));
  const added = Object.keys(hashes).filter((label) => !(label in golden));
  const report = [
    ...changed.slice(0, 10).map((l) => `changed: ${l}`),
    ...missing.slice(0, 5).map((l) => `no longer generated: ${l}`),
    ...added.slice(0, 5).map((l) => `not in the golden file: ${l}`),
  ];
  if (report.length) {
    throw new Error(
      `${changed.length} kernels differ from the golden corpus, ${missing.length} are missing, ${added.length} new:\n` +
        `${report.join("\n")}\nIf the change is deliberate, run \`deno run -A tests/kernel_corpus.ts --write\`.`,
    );
  }
  if (Object.keys(golden).length < 9000) throw new Error("The golden corpus has fewer cases than it should");
});
