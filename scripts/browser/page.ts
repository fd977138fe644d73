/**
 * The browser check's page script: runs {@linkcode tinyRun} and posts what it produced, or what went wrong (an
 * exception, or an error WebGPU reported, such as a shader that does not compile), to the server that served the
 * page (`scripts/browser_check.ts`). It also shows the outcome in the page.
 *
 * @module
 */
import { initGpu } from "@nanolm/nanolm/tensor";
import { tinyRun } from "./tiny_run.ts";

// Deno's types have no DOM; the page has one.
const { document } = globalThis as unknown as { document: { body: { textContent: string } } };

const post = (body: unknown) => fetch("/result", { method: "POST", body: JSON.stringify(body) });
const describe = (error: unknown) =>
  error instanceof Error ? `${error.name}: ${error.message}\n${error.stack ?? ""}` : String(error);
const fail = async (error: unknown) => {
  document.body.textContent = `error: ${describe(error)}`;
  await post({ error: describe(error) });
};
globalThis.addEventListener("error", (e) => fail((e as ErrorEvent).error ?? (e as ErrorEvent).message));
globalThis.addEventListener("unhandledrejection", (e) => fail((e as PromiseRejectionEvent).reason));

try {
  // A shader that does not compile only raises an event and leaves its output unwritten: collect them.
  const gpuErrors: string[] = [];
  (await initGpu()).device.addEventListener("uncapturederror", (e) => {
    gpuErrors.push((e as GPUUncapturedErrorEvent).error.message);
  });
  const result = await tinyRun();
  if (gpuErrors.length > 0) {
    throw new Error(`WebGPU reported ${gpuErrors.length} error(s); the first:\n${gpuErrors[0]}`);
  }
  document.body.textContent = `logits ${result.shape.join("x")}, continuation ${result.generated.join(" ")}`;
  await post({ result });
} catch (e) {
  await fail(e);
}
