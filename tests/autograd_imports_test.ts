/**
 * Every module of lib/tensor works when it is the first (or only) one imported: autograd needs no module to be
 * imported first to install anything. Each module runs `import_alone.ts` in a fresh process.
 */
import { assertEquals } from "./assert.ts";

const root = new URL("../", import.meta.url);

/** The modules of lib/tensor (not tests), as repository paths. */
function tensorModules(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of Deno.readDirSync(new URL(dir, root))) {
      if (e.isDirectory) walk(`${dir}${e.name}/`);
      else if (e.name.endsWith(".ts") && !e.name.endsWith("_test.ts")) out.push(`${dir}${e.name}`);
    }
  };
  walk("lib/tensor/");
  return out.sort();
}

async function runAlone(path: string): Promise<{ code: number; out: string; err: string }> {
  const cmd = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", new URL("./import_alone.ts", import.meta.url).pathname, path],
    cwd: root.pathname,
    stdout: "piped",
    stderr: "piped",
  });
  const { code, stdout, stderr } = await cmd.output();
  return { code, out: new TextDecoder().decode(stdout).trim(), err: new TextDecoder().decode(stderr).trim() };
}

const modules = tensorModules();

Deno.test("lib/tensor has the modules this test expects to import alone", () => {
  for (const path of ["lib/tensor/tensor.ts", "lib/tensor/mod.ts", "lib/tensor/ops/matmul.ts"]) {
    if (!modules.includes(path)) throw new Error(`${path} is missing from ${modules.join(", ")}`);
  }
});

for (const path of modules) {
  Deno.test(`importing ${path} first: Tensor.backward() works`, async () => {
    const { code, out, err } = await runAlone(path);
    if (code !== 0) {
      throw new Error(`import_alone.ts ${path} exited with ${code}:\n${err.split("\n").slice(0, 6).join("\n")}`);
    }
    // 2w + 3 for w = [1, -2, 3], exactly representable in f32.
    assertEquals(JSON.parse(out), [5, -1, 9]);
  });
}
