// The coordinator's side of the wire: its messages as JSON bodies, and a participant's answers
// (status and JSON) back as the core's events. The participant's side is ./participant.ts;
// the two are the one codec every node, the simulator and the tools use.
import type { CoordinatorEvent, CoordinatorMessage } from '../core/index.ts'

/** An id for a transaction whose request names none: a UUID that begins with the time (version
 * 7, RFC 9562), so that ids assigned one after another sort one after another. Every node keeps
 * its folded transactions in a table keyed by id, and state.txt sorted by id: such ids land at
 * the end of both, where random ones would each touch a page of their own (folding 2,000 into
 * a participant's log of a million took 120-134 ms with random UUIDs, 12-13 ms with these). */
export function newTxnId(): string {
  return Bun.randomUUIDv7()
}

/** The endpoint of `message`: /prepare, /precommit, /commit or /abort. */
export function pathOf(message: CoordinatorMessage): 'prepare' | 'precommit' | 'commit' | 'abort' {
  if (message.type === 'pre') return 'precommit'
  return message.type === 'prepare' ? 'prepare' : message.decision
}

/** The JSON body of `message`: for its own endpoint, or as an item of a batch (`typed`). Built
 * field by field, not spread: at full load this runs for every message. */
export function encodeMessage(
  message: CoordinatorMessage,
  coordinator: string | undefined,
  typed: boolean,
  to?: string,
  others?: readonly string[],
): Record<string, unknown> {
  const body: Record<string, unknown> = typed ? { type: pathOf(message) } : {}
  body.txn = message.txn
  // Three-phase: the coordinator's precommit is attempt 0 of E3PC.
  if (message.type === 'pre') body.attempt = 0
  if (message.type !== 'prepare') return body
  body.participants = message.participants
  if (coordinator) body.coordinator = coordinator
  if (coordinator && others && others.length > 0) body.coordinators = others
  if (message.ops) body.ops = message.ops
  if (message.onePhase) body.onePhase = true
  if (message.protocol) {
    body.protocol = message.protocol
    body.self = to
  }
  return body
}

/** The core's event for a participant's answer to `message`; null (no answer) is unreachable. */
export function decodeAnswer(
  from: string,
  message: CoordinatorMessage,
  status: number | null,
  body: unknown,
  now: number,
): CoordinatorEvent {
  if (status === null || status >= 500 || status === 408 || status === 429) {
    return { type: 'unreachable', to: from, now }
  }
  const reply = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {}
  const error = typeof reply.error === 'string' ? reply.error : `HTTP ${status}`
  if (message.type === 'prepare') {
    // A one-phase participant answers with the outcome it reached on its own.
    const state = reply.state
    if (status === 200 && message.onePhase && (state === 'committed' || state === 'aborted')) {
      return { type: 'outcome', from, decision: state === 'committed' ? 'commit' : 'abort', now }
    }
    const vote = reply.vote
    if (status === 200 && (vote === 'yes' || vote === 'no' || vote === 'read-only')) {
      const reason = typeof reply.reason === 'string' ? reply.reason : undefined
      return { type: 'vote', from, vote, reason, now }
    }
    // A participant that refuses the request or answers nonsense has not promised anything.
    return { type: 'vote', from, vote: 'no', reason: `refused prepare: ${error}`, now }
  }
  if (message.type === 'pre') return decodePreAnswer(from, status, reply, error, now)
  if (status === 200) return { type: 'ack', from, now }
  // Only a 409 says the participant's outcome differs. Any other answer (a 401 from a clock
  // that drifted, a 404 from another service on that address) is no answer: send it again.
  if (status === 409) return { type: 'refused', from, error, now }
  return { type: 'unreachable', to: from, now }
}

/** A participant's answer to the coordinator's precommit: precommitted, or the outcome a
 * termination reached without us, or (409) a later termination attempt holds it: ask again. */
function decodePreAnswer(
  from: string,
  status: number,
  reply: Record<string, unknown>,
  error: string,
  now: number,
): CoordinatorEvent {
  const state = reply.state
  if (status === 200 && state === 'precommitted') return { type: 'pre-ack', from, now }
  if (status === 200 && (state === 'committed' || state === 'aborted')) {
    return { type: 'outcome', from, decision: state === 'committed' ? 'commit' : 'abort', now }
  }
  if (status === 409 && reply.superseded === undefined) return { type: 'refused', from, error, now }
  return { type: 'unreachable', to: from, now }
}

/** The replies of a POST /batch, one per message sent, or null when the body is not that. */
export function decodeBatchReplies(body: unknown, count: number): (WireItem | null)[] | null {
  const replies = (body as { replies?: unknown } | null)?.replies
  if (!Array.isArray(replies)) return null
  return Array.from({ length: Math.min(count, replies.length) }, (_, i) => {
    const item = replies[i] as WireItem | undefined
    return item && typeof item.status === 'number' ? item : null
  })
}

export type WireItem = { status: number; body: unknown }
