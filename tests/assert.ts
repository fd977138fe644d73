/**
 * Small assertion helpers for the test suite. JSR (and so `@std/assert`) cannot be reached from our machines,
 * so the few assertions the tests need live here.
 *
 * @module
 */

/** Fails unless `cond` is truthy. */
export function assert(cond: unknown, msg = "Assertion failed"): asserts cond {
  if (!cond) throw new Error(msg);
}

/** Fails unless `actual` deep-equals `expected` (compared as JSON-like structures, Maps and typed arrays). */
export function assertEquals(actual: unknown, expected: unknown, msg?: string): void {
  if (!deepEqual(actual, expected)) {
    throw new Error(`${msg ? msg + ": " : ""}values differ\nactual:   ${show(actual)}\nexpected: ${show(expected)}`);
  }
}

/** Fails unless `text` matches `re`. */
export function assertMatch(text: string, re: RegExp, msg?: string): void {
  if (!re.test(text)) throw new Error(`${msg ? msg + ": " : ""}${JSON.stringify(text)} does not match ${re}`);
}

/** Fails unless `fn` throws (or rejects) with an error whose message includes `includes`. */
export async function assertRejects(
  fn: () => unknown,
  includes?: string | RegExp,
): Promise<Error> {
  let err: unknown;
  try {
    await fn();
  } catch (e) {
    err = e;
  }
  if (!(err instanceof Error)) throw new Error("Expected function to throw");
  checkMessage(err, includes);
  return err;
}

/** Synchronous form of {@linkcode assertRejects}. */
export function assertThrows(fn: () => unknown, includes?: string | RegExp): Error {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof Error)) throw new Error(`Expected an Error, got ${show(e)}`);
    checkMessage(e, includes);
    return e;
  }
  throw new Error("Expected function to throw");
}

function checkMessage(err: Error, includes?: string | RegExp): void {
  if (includes === undefined) return;
  const ok = typeof includes === "string" ? err.message.includes(includes) : includes.test(err.message);
  if (!ok) throw new Error(`Error message ${JSON.stringify(err.message)} does not match ${includes}`);
}

/**
 * Fails unless every element of `actual` is within `atol + rtol * |expected|` of `expected`; reports the worst
 * element with its index.
 */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  { atol = 1e-5, rtol = 1e-4, msg = "" }: { atol?: number; rtol?: number; msg?: string } = {},
): void {
  if (actual.length !== expected.length) {
    throw new Error(`${msg ? msg + ": " : ""}length ${actual.length} != expected ${expected.length}`);
  }
  let worst = -1, worstExcess = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i], e = expected[i];
    const excess = Math.abs(a - e) - (atol + rtol * Math.abs(e));
    if (!(excess <= 0) && (worst < 0 || !(excess <= worstExcess))) {
      worst = i;
      worstExcess = Number.isNaN(excess) ? Infinity : excess;
    }
  }
  if (worst >= 0) {
    throw new Error(
      `${msg ? msg + ": " : ""}element ${worst} is ${actual[worst]}, expected ${expected[worst]} ` +
        `(atol ${atol}, rtol ${rtol}, length ${actual.length})`,
    );
  }
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (ArrayBuffer.isView(a) && ArrayBuffer.isView(b)) {
    const x = a as unknown as ArrayLike<number>, y = b as unknown as ArrayLike<number>;
    if (a.constructor !== b.constructor || x.length !== y.length) return false;
    for (let i = 0; i < x.length; i++) if (!Object.is(x[i], y[i])) return false;
    return true;
  }
  if (a instanceof Map && b instanceof Map) {
    if (a.size !== b.size) return false;
    for (const [k, v] of a) if (!b.has(k) || !deepEqual(v, b.get(k))) return false;
    return true;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((v, i) => deepEqual(v, b[i]));
  }
  if (a && b && typeof a === "object" && typeof b === "object") {
    const ka = Object.keys(a), kb = Object.keys(b);
    return ka.length === kb.length &&
      ka.every((k) => deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
  }
  return false;
}

function show(v: unknown): string {
  if (ArrayBuffer.isView(v)) return `${v.constructor.name}[${Array.from(v as unknown as ArrayLike<number>)}]`;
  if (v instanceof Map) return `Map(${JSON.stringify([...v])})`;
  return typeof v === "string" ? JSON.stringify(v) : String(JSON.stringify(v) ?? v);
}
