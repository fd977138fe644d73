import { assert, assertEquals } from "../../tests/assert.ts";

// The child runs a fake training loop, "checkpoints" on the first SIGINT and exits cleanly.
const child = `
import { InterruptGuard } from ${JSON.stringify(new URL("./interrupt.ts", import.meta.url).href)};
using guard = new InterruptGuard({ onInterrupt: (s) => console.log("interrupted by " + s) });
console.log("ready");
let step = 0;
while (!guard.requested) { step++; await new Promise((r) => setTimeout(r, 5)); }
await Deno.writeTextFile(Deno.args[0], "checkpoint at step " + step);
console.log("saved");
`;

Deno.test({
  name: "InterruptGuard lets a loop save and exit cleanly on SIGINT",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    const dir = await Deno.makeTempDir();
    await Deno.writeTextFile(`${dir}/child.ts`, child);
    const proc = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--no-check", `${dir}/child.ts`, `${dir}/ckpt.txt`],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = proc.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let out = "";
    while (!out.includes("ready")) out += (await reader.read()).value ?? "";
    proc.kill("SIGINT");
    for (let r = await reader.read(); !r.done; r = await reader.read()) out += r.value;
    const status = await proc.status;
    assertEquals(status.code, 0);
    assert(out.includes("interrupted by SIGINT") && out.includes("saved"), out);
    assert((await Deno.readTextFile(`${dir}/ckpt.txt`)).startsWith("checkpoint at step "));
    await Deno.remove(dir, { recursive: true });
  },
});
