/**
 * The autograd notebook's gradient check (`notebooks/02_tensors_autograd.ipynb`) as a terminal script: a small
 * network (linear map, RMSNorm, SiLU, linear map, cross-entropy) is differentiated by autograd on the GPU and by
 * central finite differences, parameter by parameter. Exits with status 1 if they disagree.
 *
 * Usage: `deno run -A examples/autograd.ts`.
 *
 * @module
 */
import { crossEntropy, initGpu, matmul, param, randn, readAll, Rng, type Tensor, tensor } from "../mod.ts";
import { rmsNorm, silu } from "../lib/tensor/mod.ts";
import { type TableRow, textTable } from "../lib/notebook/mod.ts";

const backend = await initGpu();
const rng = new Rng(42);
const input = randn([4, 4], { rng });
const targets = tensor(new Int32Array([0, 2, 1, 2]), { shape: [4], dtype: "i32" });
const shapes = { W1: [4, 6], gain: [6], W2: [6, 3] };
type Name = keyof typeof shapes;
const names = Object.keys(shapes) as Name[];
const init: Record<Name, number[]> = {
  W1: Array.from({ length: 24 }, () => rng.normal() * 0.5),
  gain: Array.from({ length: 6 }, () => 1 + 0.1 * rng.normal()),
  W2: Array.from({ length: 18 }, () => rng.normal() * 0.5),
};

/** The loss of the network for the given weights; parameters when `asParams`, so that autograd tracks them. */
function loss(values: Record<Name, number[]>, asParams: boolean): { value: Tensor; params: Tensor[] } {
  const ts = names.map((n) => {
    const t = tensor(Float32Array.from(values[n]), { shape: shapes[n] });
    return asParams ? param(t, n) : t;
  });
  const [w1, gain, w2] = ts;
  return { value: crossEntropy(matmul(silu(rmsNorm(matmul(input, w1), gain)), w2), targets), params: ts };
}

const { value, params } = loss(init, true);
value.backward();
const analytic = await readAll(params.map((p) => p.grad!));
// float32 on the GPU: h = 1e-2 balances truncation error (h²) against rounding (1e-7 / h).
const h = 1e-2;
const rows: TableRow[] = [];
for (const [k, n] of names.entries()) {
  for (let i = 0; i < init[n].length; i++) {
    const plus = structuredClone(init), minus = structuredClone(init);
    plus[n][i] += h;
    minus[n][i] -= h;
    const [lp, lm] = await readAll([loss(plus, false).value, loss(minus, false).value]);
    const numeric = (lp[0] - lm[0]) / (2 * h), a = analytic[k][i];
    const rel = Math.abs(a - numeric) / Math.max(Math.abs(a) + Math.abs(numeric), 1e-3);
    rows.push({ parameter: `${n}[${i}]`, autograd: a, "finite difference": numeric, "rel error": rel });
  }
}
const worst = Math.max(...rows.map((r) => r["rel error"] as number));
rows.sort((a, b) => (b["rel error"] as number) - (a["rel error"] as number));
console.log(`Gradient check on ${backend.info.description}: ${rows.length} parameters\n`);
console.log(textTable(rows.slice(0, 10), { title: "The ten largest relative errors" }));
console.log(`\nlargest relative error ${worst.toExponential(2)}: ${worst < 1e-2 ? "ok" : "FAILED"}`);
if (!(worst < 1e-2)) Deno.exit(1);
