import { assert, assertEquals, assertThrows } from "../../tests/assert.ts";
import { Rng } from "./random.ts";

Deno.test("same seed gives the same stream; state round-trips", () => {
  const a = new Rng(123), b = new Rng(123);
  for (let i = 0; i < 10; i++) assertEquals(a.nextUint32(), b.nextUint32());
  const resumed = Rng.fromState(a.state());
  for (let i = 0; i < 10; i++) assertEquals(resumed.normal(), a.normal());
  assert(new Rng(1).nextUint32() !== new Rng(2).nextUint32());
});

Deno.test("uniform, int and normal have the right moments", () => {
  const rng = new Rng(7);
  const n = 200_000;
  let su = 0, sn = 0, sn2 = 0;
  const counts = new Array(7).fill(0);
  for (let i = 0; i < n; i++) {
    const u = rng.uniform();
    assert(u >= 0 && u < 1);
    su += u;
    const z = rng.normal();
    sn += z;
    sn2 += z * z;
    counts[rng.int(7)]++;
  }
  assert(Math.abs(su / n - 0.5) < 0.005, `uniform mean ${su / n}`);
  assert(Math.abs(sn / n) < 0.01, `normal mean ${sn / n}`);
  assert(Math.abs(sn2 / n - 1) < 0.015, `normal variance ${sn2 / n}`);
  for (const c of counts) assert(Math.abs(c / n - 1 / 7) < 0.005, `int(7) bucket ${c / n}`);
});

Deno.test("bad seeds and states are rejected with the value named", () => {
  assertThrows(() => new Rng(1.5), "1.5");
  assertThrows(() => Rng.fromState([1, 2, 3] as unknown as [number, number, number, number]), "[1,2,3]");
  assertThrows(() => new Rng(0).int(0), "got 0");
});
