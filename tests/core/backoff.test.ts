// Exponential backoff with equal jitter (lib/core/backoff.ts).
import { describe, expect, test } from 'bun:test'
import { backoffMs, mulberry32, type Backoff, type Prng } from '../../lib/core/index.ts'

const zero: Prng = () => 0
const almostOne: Prng = () => 0.999
const half: Prng = () => 0.5

describe('backoffMs', () => {
  // Rule: exponential backoff with equal jitter: half of baseMs · 2^attempt fixed, half random,
  // never above capMs (defaults: base 10 ms, cap 1000 ms).
  const table: [attempt: number, prng0: number, prngHalf: number, prngAlmostOne: number][] = [
    [0, 5, 7.5, 9.995],
    [1, 10, 15, 19.99],
    [2, 20, 30, 39.98],
    [3, 40, 60, 79.96],
    [4, 80, 120, 159.92],
    [5, 160, 240, 319.84],
    [6, 320, 480, 639.68],
    [7, 500, 750, 999.5], // 10 · 2^7 = 1280 is over the cap
    [8, 500, 750, 999.5],
    [30, 500, 750, 999.5],
    [1000, 500, 750, 999.5], // a huge attempt neither overflows nor yields Infinity
  ]
  test.each(table)('attempt %i waits %d / %d / %d ms with prng 0 / 0.5 / 0.999', (n, a, b, c) => {
    expect(backoffMs(n, zero)).toBe(a)
    expect(backoffMs(n, half)).toBe(b)
    expect(backoffMs(n, almostOne)).toBeCloseTo(c, 9)
  })

  const custom: Backoff = { baseMs: 100, capMs: 250 }
  test.each([
    [0, 50],
    [1, 100],
    [2, 125],
    [3, 125],
  ])('with base 100 and cap 250, attempt %i waits %d ms with prng 0', (n, want) => {
    expect(backoffMs(n, zero, custom)).toBe(want)
  })

  test('the delay stays within [ceiling / 2, ceiling) and never falls as attempts grow', () => {
    const prng = mulberry32(42)
    let floor = 0
    for (let n = 0; n < 12; n++) {
      const ceiling = Math.min(1000, 10 * 2 ** n)
      const ms = backoffMs(n, prng)
      expect(ms).toBeGreaterThanOrEqual(ceiling / 2)
      expect(ms).toBeLessThan(ceiling)
      expect(ceiling / 2).toBeGreaterThanOrEqual(floor)
      floor = ceiling / 2
    }
  })

  test('the same seed gives the same delays (determinism)', () => {
    const run = (seed: number) => {
      const prng = mulberry32(seed)
      return Array.from({ length: 8 }, (_, n) => backoffMs(n, prng))
    }
    expect(run(7)).toEqual(run(7))
    expect(run(7)).not.toEqual(run(8))
  })
})
