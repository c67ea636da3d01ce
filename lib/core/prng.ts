import type { Prng } from './types.ts'

/** mulberry32, a small seeded PRNG (as in Deno std's tests): the same seed gives the same
 * sequence, so a seeded run (simulation, workload, backoff in tests) can be replayed exactly. */
export function mulberry32(seed: number): Prng {
  let a = seed >>> 0
  return function next(): number {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32
  }
}
