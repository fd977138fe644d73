/**
 * How a model shows itself in a notebook: its architecture and a table of parameters and forward FLOPs by component.
 *
 * @module
 */
import { accountingTable, type ModelShape, parameterCounts } from "./accounting.ts";
import { factsBundle, type MimeBundle } from "../notebook/display.ts";
import { htmlTable, type TableRow, textTable } from "../notebook/table.ts";
import { formatCount } from "../util/format.ts";

/**
 * The view of a model: its architecture and a table of parameters and forward FLOPs by component (one sequence of
 * the context length, CS336 counting, see the accounting module).
 *
 * @example
 * ```ts
 * import { modelBundle } from "@nanolm/nanolm/nn";
 * const shape = { vocabSize: 50257, contextLength: 1024, dModel: 768, numLayers: 12, numHeads: 12, dFf: 3072 };
 * const bundle = modelBundle(shape, { title: "GPT-2 small" });
 * // 12·(4d² + 3·d·d_ff + 2d) + 2·V·d + d parameters (SwiGLU, untied embeddings).
 * if (!(bundle["text/plain"] as string).includes("190,460,160")) throw new Error("the parameter count is shown");
 * if (!(bundle["text/html"] as string).includes("LM head")) throw new Error("the table has a row per component");
 * ```
 */
export function modelBundle(shape: ModelShape, options: { title?: string } = {}): MimeBundle {
  const p = parameterCounts(shape);
  const variants = [
    `norm ${shape.norm ?? "pre"}`,
    `position ${shape.position ?? "rope"}`,
    `ffn ${shape.ffn ?? "swiglu"}`,
    ...(shape.parallelLayers ? ["parallel layers"] : []),
    ...(shape.tieEmbeddings ? ["tied embeddings"] : []),
  ].join(", ");
  const facts: [string, string][] = [
    [
      "shape",
      `${shape.numLayers} layers, d_model ${shape.dModel}, ${shape.numHeads} heads, d_ff ${shape.dFf}, ` +
      `vocab ${shape.vocabSize}, context ${shape.contextLength}`,
    ],
    ["variants", variants],
    ["parameters", `${p.total.toLocaleString("en-US")} (${formatCount(p.total)})`],
  ];
  const rows: TableRow[] = accountingTable(shape).map((r) => ({
    component: r.component,
    parameters: r.parameters,
    "forward FLOPs / sequence": r.forwardFlops,
    "FLOP share": `${(100 * r.flopShare).toFixed(1)}%`,
  }));
  const base = factsBundle(options.title ?? "TransformerLM", facts);
  return {
    "text/plain": `${base["text/plain"]}\n${textTable(rows)}`,
    "text/html": `${base["text/html"]}${htmlTable(rows)}`,
  };
}
