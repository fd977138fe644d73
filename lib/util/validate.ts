/**
 * Validation of plain-JSON settings (config files, flags, checkpoint metadata) with zod: every problem reported
 * with the dotted path of the field at fault, in one error.
 *
 * @module
 */
import type { z } from "zod";

/** One problem found in a config: the dotted field path (`""` for the object itself) and what is wrong. */
export interface ConfigIssue {
  /** Dotted path of the field, e.g. `"model.numHeads"` or `"train.betas.1"`. */
  path: string;
  /** What is wrong with it. */
  message: string;
}

/**
 * Thrown by the `parse*Config` functions; the message lists every issue as `path: problem`.
 *
 * @example
 * ```ts
 * import { ConfigError, parseModelConfig } from "@nanolm/nanolm";
 * try {
 *   parseModelConfig({ vocabSize: 10, contextLength: 8, dModel: 30, numLayers: 1, numHeads: 4 });
 *   throw new Error("dModel 30 with 4 heads passed");
 * } catch (e) {
 *   // dModel 30 does not split into 4 heads: the issue names the field.
 *   if (!(e instanceof ConfigError) || e.issues[0].path !== "numHeads") throw e;
 * }
 * ```
 */
export class ConfigError extends Error {
  /** Every problem found. */
  readonly issues: ConfigIssue[];

  /** Creates the error for `what` (e.g. "model config") from its issues. */
  constructor(what: string, issues: ConfigIssue[]) {
    const lines = issues.map((i) => `  ${i.path || "(top level)"}: ${i.message}`);
    super(`Invalid ${what}:\n${lines.join("\n")}`);
    this.name = "ConfigError";
    this.issues = issues;
  }
}

/**
 * Parses `input` with `schema`, throwing a {@linkcode ConfigError} for `what` (e.g. "model config") that lists every
 * issue.
 *
 * @example
 * ```ts
 * import { z } from "npm:zod@^4.1.12";
 * import { ConfigError } from "@nanolm/nanolm";
 * import { validate } from "./validate.ts";
 * const schema = z.strictObject({ steps: z.number().int() });
 * if (validate(schema, "train config", { steps: 3 }).steps !== 3) throw new Error("a valid value changed");
 * try {
 *   validate(schema, "train config", { steps: 1.5 });
 *   throw new Error("1.5 steps passed");
 * } catch (e) {
 *   if (!(e instanceof ConfigError) || e.issues[0].path !== "steps") throw e;
 * }
 * ```
 */
export function validate<T>(schema: z.ZodType<T>, what: string, input: unknown): T {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  throw new ConfigError(
    what,
    result.error.issues.map((i) => ({ path: i.path.map(String).join("."), message: i.message })),
  );
}
