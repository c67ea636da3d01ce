/** mulberry32: a small seeded PRNG, as in Deno std's tests. Same seed, same sequence. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0
  return function next(): number {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32
  }
}

export type Random = {
  next: () => number
  chance: (p: number) => boolean
  int: (lo: number, hi: number) => number
  pick: <T>(items: readonly T[]) => T
}

export function random(seed: number): Random {
  const next = mulberry32(seed)
  return {
    next,
    chance: (p) => next() < p,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: (items) => items[Math.floor(next() * items.length)]!,
  }
}
