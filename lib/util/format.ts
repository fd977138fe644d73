/**
 * Human-readable counts and durations for progress lines, tables and reports.
 *
 * @module
 */

/**
 * Formats a count with k/M/G suffixes: `formatCount(12345) === "12.3k"`.
 *
 * @example
 * ```ts
 * import { formatCount } from "./format.ts";
 * const shown = [formatCount(12345), formatCount(2.5e6), formatCount(999)].join(" ");
 * if (shown !== "12.3k 2.5M 999") throw new Error(shown);
 * ```
 */
export function formatCount(n: number): string {
  if (!Number.isFinite(n)) return "?";
  const a = Math.abs(n);
  if (a >= 1e9) return `${(n / 1e9).toFixed(1)}G`;
  if (a >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (a >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return Number.isInteger(n) ? `${n}` : n.toFixed(1);
}

/**
 * Formats seconds as `1h02m`, `3m05s` or `4.2s`.
 *
 * @example
 * ```ts
 * import { formatDuration } from "./format.ts";
 * const shown = [formatDuration(3725), formatDuration(185), formatDuration(4.2)].join(" ");
 * if (shown !== "1h02m 3m05s 4.2s") throw new Error(shown);
 * ```
 */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  if (seconds >= 3600) {
    return `${Math.floor(seconds / 3600)}h${String(Math.floor((seconds % 3600) / 60)).padStart(2, "0")}m`;
  }
  if (seconds >= 60) return `${Math.floor(seconds / 60)}m${String(Math.floor(seconds % 60)).padStart(2, "0")}s`;
  return `${seconds.toFixed(1)}s`;
}
