/**
 * WGSL as every WebGPU implementation accepts it. The kernels write an infinity or a NaN as
 * `bitcast<f32>(0xff800000u)`; that is a constant expression, and the WGSL spec makes a constant expression whose
 * value is not finite a shader-creation error. Deno's compiler (naga) lets it pass; Chrome's (Tint) refuses the
 * shader. {@linkcode portableWgsl} reads such bits from a module-scope `var<private>` instead, which is not a
 * constant expression and compiles to the same value.
 *
 * @module
 */

/** `bitcast<f32>(<u32 literal>)`, the bits in group 1. */
const BITCAST_LITERAL = /bitcast<f32>\(\s*0[xX]([0-9a-fA-F]{1,8})u\s*\)/g;

/** Leading directives (`enable f16;`...), which must precede every declaration. */
const DIRECTIVES = /^(?:\s*(?:enable|requires|diagnostic)\b[^;]*;)*/;

/**
 * `source` with every constant infinity or NaN (`bitcast<f32>` of a u32 literal whose exponent bits are all set)
 * replaced by a read of a private variable that holds the bits; other code is unchanged.
 *
 * @example
 * ```ts
 * import { portableWgsl } from "./wgsl.ts";
 * const source = "fn f() -> f32 { return max(bitcast<f32>(0xff800000u), bitcast<f32>(0x3f800000u)); }";
 * const portable = portableWgsl(source);
 * // -inf now comes from a variable; 1.0 (0x3f800000) is finite and stays a constant.
 * if (portable.includes("bitcast<f32>(0xff800000u)")) throw new Error("the constant -inf is still there");
 * if (!portable.startsWith("var<private> nanolm_bits_ff800000: u32 = 0xff800000u;")) throw new Error(portable);
 * if (!portable.includes("bitcast<f32>(0x3f800000u)")) throw new Error("a finite constant changed");
 * ```
 */
export function portableWgsl(source: string): string {
  const declared = new Set<string>();
  const body = source.replace(BITCAST_LITERAL, (literal, hex: string) => {
    const bits = parseInt(hex, 16) >>> 0;
    if (((bits >>> 23) & 0xff) !== 0xff) return literal;
    const name = `nanolm_bits_${bits.toString(16).padStart(8, "0")}`;
    declared.add(`var<private> ${name}: u32 = 0x${bits.toString(16)}u;`);
    return `bitcast<f32>(${name})`;
  });
  if (declared.size === 0) return source;
  const directives = DIRECTIVES.exec(body)![0];
  return `${directives}${directives ? "\n" : ""}${[...declared].join("\n")}\n${body.slice(directives.length)}`;
}
