import { mulberry32 } from '../../lib/core/index.ts'

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
