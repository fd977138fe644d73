/**
 * Imports one module of lib/tensor before anything else of the package, then runs a small backward pass and prints
 * the gradients as JSON: `autograd_imports_test.ts` runs it in a fresh process per module, so that autograd cannot
 * depend on what some other module installs when it is imported.
 *
 * `deno run -A tests/import_alone.ts lib/tensor/ops/matmul.ts`
 *
 * @module
 */
const [path] = Deno.args;
if (!path) throw new Error("Usage: deno run -A tests/import_alone.ts <module of lib/tensor>");
// Dynamic imports only, in this order: the module under test is the first of the package to be evaluated.
await import(new URL(`../${path}`, import.meta.url).href);
const { initGpu } = await import("../lib/gpu/backend.ts");
const { param, tensor } = await import("../lib/tensor/create.ts");
const { mul } = await import("../lib/tensor/ops/elementwise.ts");
const { sum } = await import("../lib/tensor/ops/reduce.ts");
await initGpu();
const w = param(tensor([1, -2, 3]));
sum(mul(w, w)).backward(); // d/dw sum(w^2) = 2w
sum(mul(w, 3)).backward(); // accumulates 3
console.log(JSON.stringify(Array.from(await w.grad!.data())));
