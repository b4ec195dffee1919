import { describe, expect, test } from "bun:test";
import { uuidv7, uuidv7Generator, uuidv7Time } from "../../src/client/index.ts";

const bytesOf = (id: string) => Uint8Array.from(id.replaceAll("-", "").match(/../g)!.map((h) => parseInt(h, 16)));
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe("client UUIDv7 (RFC 9562 §5.7)", () => {
  test("layout: 48-bit big-endian ms timestamp, version 7, variant 10, and the random bits where RFC 9562 puts them", () => {
    const ms = 0x0123_4567_89ab;
    const id = uuidv7Generator(() => ms, (b) => b.fill(0xff))();
    expect(id).toMatch(UUID);
    const b = bytesOf(id);
    expect([...b.subarray(0, 6)]).toEqual([0x01, 0x23, 0x45, 0x67, 0x89, 0xab]);
    expect(b[6]! >> 4).toBe(0b0111);
    expect(b[8]! >> 6).toBe(0b10);
    // rand_a (12 bits) and rand_b (62 bits) all come from the random source: 74 bits of 0xff here.
    expect(b[6]! & 0x0f).toBe(0x0f);
    expect(b[7]).toBe(0xff);
    expect(b[8]! & 0x3f).toBe(0x3f);
    expect([...b.subarray(9)]).toEqual([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    expect(id).toBe("01234567-89ab-7fff-bfff-ffffffffffff");
    expect(uuidv7Time(id)).toBe(ms);
  });

  test("zero random bits keep only the version and variant set", () => {
    expect(uuidv7Generator(() => 0, (b) => b.fill(0))()).toBe("00000000-0000-7000-8000-000000000000");
  });

  test("the default generator draws from crypto.getRandomValues and stamps the current time", () => {
    const before = Date.now();
    const ids = Array.from({ length: 1000 }, () => uuidv7());
    const after = Date.now();
    expect(new Set(ids).size).toBe(1000);
    for (const id of ids) {
      expect(id).toMatch(UUID);
      const t = uuidv7Time(id)!;
      expect(t).toBeGreaterThanOrEqual(before);
      // Monotonic overflow may run a generator ahead of the clock by a millisecond, never more here.
      expect(t).toBeLessThanOrEqual(after + 1);
    }
  });

  test("monotonic within one millisecond: the random bits are incremented, so IDs sort in creation order", () => {
    let n = 0;
    const next = uuidv7Generator(() => 1_700_000_000_000, (b) => b.fill(n++ === 0 ? 0x10 : 0xee));
    const ids = Array.from({ length: 5000 }, next);
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
    // Only the first ID drew random bits; the rest are +1 each.
    expect(n).toBe(1);
    expect(ids[1]).toBe("018bcfe5-6800-7010-9010-101010101011");
    for (const id of ids) expect(uuidv7Time(id)).toBe(1_700_000_000_000);
  });

  test("a carry runs from rand_b into rand_a across the variant bits", () => {
    const next = uuidv7Generator(() => 5, (b) => {
      b.fill(0xff);
      b[0] = 0x70; // rand_a = 0x0ff (its top nibble 0), rand_b all ones
    });
    expect(next()).toBe("00000000-0005-70ff-bfff-ffffffffffff");
    expect(next()).toBe("00000000-0005-7100-8000-000000000000");
  });

  test("when the 74 random bits overflow, the timestamp moves on by one millisecond", () => {
    const next = uuidv7Generator(() => 1000, (b) => b.fill(0xff));
    const first = next();
    const second = next();
    expect(uuidv7Time(first)).toBe(1000);
    expect(uuidv7Time(second)).toBe(1001);
    expect(second > first).toBe(true);
  });

  test("a clock stepping back does not make IDs go backwards", () => {
    const times = [10_000, 9_000, 9_500, 10_001];
    const next = uuidv7Generator(() => times.shift()!, (b) => b.fill(0x42));
    const ids = [next(), next(), next(), next()];
    expect([...ids].sort()).toEqual(ids);
    expect(ids.map((id) => uuidv7Time(id))).toEqual([10_000, 10_000, 10_000, 10_001]);
  });

  test("uuidv7Time refuses what is not a UUIDv7", () => {
    expect(uuidv7Time(crypto.randomUUID())).toBeUndefined(); // version 4
    expect(uuidv7Time("evt-1")).toBeUndefined();
  });
});
