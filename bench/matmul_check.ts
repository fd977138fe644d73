/**
 * Correctness sweep of the generated matmul against a float64 CPU reference: odd shapes, both transposes, every
 * tile of `matmulTiles`, split-K 1 and 3, and each code-generation variant given with `--variants`
 * (`pipeline:pad:transpose:swizzle:layout`, comma separated; default: the default variant). Runs anywhere WebGPU does
 * (slowly on software adapters): `deno run -A bench/matmul_check.ts`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { initGpu, matmul, readAll, type Tensor, tensor } from "../lib/tensor/mod.ts";
import { largeTileDeepK, type MatmulTile, matmulTiles, type MatmulVariant } from "../kernels/matmul.ts";
import { withMatmulTuning } from "../lib/tensor/ops/matmul.ts";

const args = parseArgs({ options: { variants: { type: "string" }, quick: { type: "boolean", default: false } } });
await initGpu();

/** Parses `pipeline:pad:transpose:swizzle:layout`. */
export function parseVariant(s: string): Partial<MatmulVariant> {
  const [pipeline, pad, transpose, swizzle, layout] = s.split(":");
  const v: Partial<MatmulVariant> = {};
  if (pipeline) v.pipeline = pipeline as MatmulVariant["pipeline"];
  if (pad) v.pad = Number(pad);
  if (transpose) v.transpose = transpose as MatmulVariant["transpose"];
  if (swizzle) v.swizzle = Number(swizzle);
  if (layout) v.layout = layout as MatmulVariant["layout"];
  return v;
}

let seed = 12345;
const rnd = () => {
  seed = (seed * 1103515245 + 12345) >>> 0;
  return (seed / 2 ** 32) * 2 - 1;
};
const randArr = (n: number) => Float32Array.from({ length: n }, rnd);

/** op(A) (M x K) @ op(B) (K x N) in float64. */
function reference(a: Float32Array, b: Float32Array, m: number, n: number, k: number, tA: boolean, tB: boolean) {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) {
      const av = tA ? a[p * m + i] : a[i * k + p];
      for (let j = 0; j < n; j++) c[i * n + j] += av * (tB ? b[j * k + p] : b[p * n + j]);
    }
  }
  return c;
}

const shapes: [number, number, number][] = args.values.quick
  ? [[7, 13, 5], [129, 127, 31], [40, 36, 1100]]
  : [[1, 1, 1], [7, 13, 5], [33, 65, 17], [129, 127, 31], [64, 64, 2048], [40, 36, 1100]];
const variants = (args.values.variants ?? "").split(",").map(parseVariant);
let failures = 0, cases = 0;
for (const [m, n, k] of shapes) {
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      const a = randArr(m * k), b = randArr(k * n);
      const expected = reference(a, b, m, n, k, transA, transB);
      const ta = tensor(a, { shape: transA ? [k, m] : [m, k] }), tb = tensor(b, { shape: transB ? [n, k] : [k, n] });
      const outs: Tensor[] = [], labels: string[] = [];
      const tiles: [string, MatmulTile | undefined][] = [
        ...Object.entries(matmulTiles),
        ["largeDeepK", largeTileDeepK],
        ["auto", undefined],
      ];
      for (const [tname, tile] of tiles) {
        for (const splitK of [1, 3, undefined]) {
          for (const variant of variants) {
            outs.push(withMatmulTuning({ tile, splitK, variant }, () => matmul(ta, tb, { transA, transB })));
            labels.push(
              `${m}x${n}x${k} tA=${transA} tB=${transB} ${tname} splitK=${splitK} ${JSON.stringify(variant)}`,
            );
          }
        }
      }
      const got = await readAll(outs);
      got.forEach((g, i) => {
        cases++;
        let err = 0;
        for (let q = 0; q < expected.length; q++) err = Math.max(err, Math.abs(g[q] - expected[q]));
        if (!(err < 1e-3 * Math.sqrt(k))) {
          failures++;
          console.log(`FAIL ${labels[i]}: max abs err ${err}`);
        }
      });
      for (const t of [ta, tb, ...outs]) t.dispose();
    }
  }
}
console.log(`${cases - failures}/${cases} matmul cases within 1e-3*sqrt(K)`);
if (failures) Deno.exit(1);
