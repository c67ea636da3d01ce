// The questions a participant in doubt asks, and what their answers mean: the coordinator's
// GET /transactions/:id and a peer's POST /decision-request.
import type { CoordinatorAnswer } from '../core/index.ts'

/** The coordinator's answer about a transaction, as its API returns it. */
export function encodeCoordinatorAnswer(id: string, answer: CoordinatorAnswer) {
  return { id, state: answer }
}

/** What the coordinator said, or null when it said nothing we understand (another service on
 * that address, an error, no answer at all). A 404 body still counts: it may say `unknown`. */
export function decodeCoordinatorAnswer(
  reply: { status: number; body: unknown } | null,
): CoordinatorAnswer | null {
  if (reply === null || (reply.status !== 200 && reply.status !== 404)) return null
  const state = (reply.body as { state?: unknown } | null)?.state
  const known = ['unknown', 'preparing', 'commit', 'abort']
  return typeof state === 'string' && known.includes(state) ? (state as CoordinatorAnswer) : null
}

/** A peer's state of the transaction, or null when it gave none. */
export function decodePeerState(reply: { status: number; body: unknown } | null): unknown {
  if (reply === null || reply.status !== 200) return null
  return (reply.body as { state?: unknown } | null)?.state ?? null
}
