/**
 * Runs every doc example of the library (`mod.ts`, `lib/`, `kernels/`) and the README's code with `deno test --doc`,
 * then lists the examples that failed as `file:line` (the line of the example's opening fence), so a failure names
 * the example to open rather than a generated module. Blocks marked `ts ignore` are type-checked, not run. Extra arguments go to
 * `deno test` (e.g. `--filter`).
 *
 * ```sh
 * deno run -A scripts/doc_test.ts            # part of `deno task check:docs`
 * deno run -A scripts/doc_test.ts lib/io/     # only the files under lib/io/
 * ```
 *
 * @module
 */

import { docExamples, isScript, sourceFiles } from "./check_examples.ts";
import { vulkanDriverFiles } from "../lib/cli/vulkan.ts";

const root = new URL("../", import.meta.url);

/**
 * The library's files that hold at least one script example, and the README (whose code blocks `deno test --doc`
 * runs too), optionally only those under the given paths.
 */
export async function filesWithExamples(under: string[] = []): Promise<string[]> {
  const files: string[] = [];
  if (under.length === 0 || under.includes("README.md")) files.push("README.md");
  for (const file of await sourceFiles()) {
    if (under.length > 0 && !under.some((prefix) => file.startsWith(prefix.replace(/^\.\//, "")))) continue;
    const src = await Deno.readTextFile(new URL(file, root));
    if (docExamples(src).some((e) => isScript(e.lang))) files.push(file);
  }
  return files;
}

/**
 * The examples named in `deno test --doc` output as failing or not type-checking, as `file:line` for the line of
 * the example's opening fence, in order and without repeats. Deno names an example `<file>#<first>-<last>.ts`.
 */
export function failedExamples(output: string): string[] {
  // deno-lint-ignore no-control-regex -- the output's colour codes start with ESC
  const text = output.replace(/\x1b\[[0-9;]*m/g, "");
  const failures = new Set<string>();
  const start = text.lastIndexOf(" FAILURES ");
  const sections = [text.slice(start >= 0 ? start : text.length)];
  // Type errors stop the run before any example runs; each names its example in an `at` line.
  if (/error: Type checking failed/.test(text)) sections.push(text);
  for (const section of sections) {
    const example = /(?:file:\/\/\S*?\/|\.\/)((?:lib|kernels)\/\S+?\.ts|mod\.ts|README\.md)#(\d+)-\d+\.ts/g;
    for (const m of section.matchAll(example)) {
      if (section === text && !/^\s*at /.test(lineAround(text, m.index))) continue;
      failures.add(`${m[1]}:${m[2]}`);
    }
  }
  return [...failures];
}

/**
 * The `deno test` child's environment: on Linux with a Vulkan driver, WebGPU on Vulkan alone. Deno's default
 * instance also starts wgpu's OpenGL backend, and libglvnd's libEGL keeps state for each thread that calls it; when
 * a test thread exits while the process runs its exit handlers, libEGL's teardown and the thread's own free that
 * state twice, and the run aborts ("double free or corruption", "corrupted size vs. prev_size") after every example
 * passed. An explicit `DENO_WEBGPU_BACKEND` is left as it is.
 */
function childEnv(): Record<string, string> {
  if (Deno.build.os !== "linux" || Deno.env.get("DENO_WEBGPU_BACKEND") || vulkanDriverFiles().length === 0) return {};
  return { DENO_WEBGPU_BACKEND: "vulkan" };
}

function lineAround(text: string, index: number): string {
  return text.slice(text.lastIndexOf("\n", index) + 1, index);
}

if (import.meta.main) {
  const paths = Deno.args.filter((a) => !a.startsWith("-"));
  const flags = Deno.args.filter((a) => a.startsWith("-"));
  const files = await filesWithExamples(paths);
  if (files.length === 0) {
    console.error(`doc_test: no examples under ${paths.join(", ")}`);
    Deno.exit(1);
  }
  const started = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["test", "--doc", "--allow-all", "--quiet", ...flags, ...files],
    cwd: root,
    env: childEnv(),
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // Echo as it comes and keep a copy to name the failures at the end.
  let output = "";
  const echo = async (stream: ReadableStream<Uint8Array>, to: typeof Deno.stdout) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      output += decoder.decode(chunk, { stream: true });
      await to.write(chunk);
    }
  };
  const [status] = await Promise.all([child.status, echo(child.stdout, Deno.stdout), echo(child.stderr, Deno.stderr)]);
  const seconds = ((performance.now() - started) / 1000).toFixed(0);
  const failed = failedExamples(output);
  if (status.success) {
    console.log(`doc_test: the examples of ${files.length} files pass (${seconds} s)`);
  } else {
    console.error(`\ndoc_test: examples failed (${seconds} s; exit code ${status.code}):`);
    for (const at of failed) console.error(`  ${at}`);
    if (failed.length === 0) console.error("  (none named: see the output above)");
    Deno.exit(1);
  }
}
