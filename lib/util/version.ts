/**
 * The package's version, as published (from deno.json).
 *
 * @module
 */
import meta from "../../deno.json" with { type: "json" };

/**
 * nanolm's version string, e.g. for reports and bug reports.
 *
 * @example
 * ```ts
 * import { VERSION } from "@nanolm/nanolm";
 * if (!/^\d+\.\d+\.\d+/.test(VERSION)) throw new Error(`not a semantic version: ${VERSION}`);
 * ```
 */
export const VERSION: string = meta.version;
