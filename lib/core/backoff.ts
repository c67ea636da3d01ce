import type { Prng } from './types.ts'

/** Exponential backoff: `baseMs · 2^attempt`, at most `capMs`. */
export type Backoff = Readonly<{ baseMs: number; capMs: number }>

export const defaultBackoff: Backoff = { baseMs: 10, capMs: 1000 }

/** The wait before retry number `attempt` (0 first), with "equal jitter": half fixed, half
 * random, so that many senders retrying the same peer spread out instead of arriving together. */
export function backoffMs(attempt: number, prng: Prng, backoff: Backoff = defaultBackoff): number {
  const ceiling = Math.min(backoff.capMs, backoff.baseMs * 2 ** Math.min(attempt, 30))
  return ceiling / 2 + (ceiling / 2) * prng()
}
