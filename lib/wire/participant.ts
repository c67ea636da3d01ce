// The participant's side of the wire: request bodies checked and turned into the core's events,
// and the core's replies turned into a status and a JSON body (or the classic plain text).
import {
  OpError,
  isTxnId,
  parseOps,
  txnIdError,
  type Decision,
  type Op,
  type Reply,
} from '../core/index.ts'

/** A request that is not well formed: answered 400 with `message`, changing nothing. */
export class WireError extends Error {
  readonly status = 400
}

export type Body = Record<string, unknown>

/** The most messages one POST /batch may carry. */
export const MAX_BATCH = 256

/** The messages of a POST /batch body: each is then decoded on its own (one bad message is
 * its own 400, not the whole batch's). */
export function decodeBatch(body: Body): unknown[] {
  const messages = body.messages
  if (!Array.isArray(messages) || messages.length > MAX_BATCH) {
    throw new WireError(`invalid "messages": expected an array of at most ${MAX_BATCH}`)
  }
  return messages
}

/** What a prepare carries: whom to ask in doubt, the operations, and whether in one phase. */
export type PrepareRequest = {
  txn: string
  ops: Op[]
  coordinator?: string
  peers?: string[]
  onePhase: boolean
}

export function decodeTxn(body: Body): string {
  if (!isTxnId(body.txn)) throw new WireError(txnIdError(body.txn))
  return body.txn
}

export function decodePrepare(body: Body): PrepareRequest {
  const { coordinator, participants } = body
  if (coordinator !== undefined && !isHttpUrl(coordinator)) {
    throw new WireError('invalid "coordinator": expected an http(s) URL')
  }
  const peersOk =
    participants === undefined ||
    (Array.isArray(participants) && participants.length <= 64 && participants.every(isHttpUrl))
  if (!peersOk) throw new WireError('invalid "participants": expected up to 64 http(s) URLs')
  if (body.onePhase !== undefined && typeof body.onePhase !== 'boolean') {
    throw new WireError('invalid "onePhase": expected true or false')
  }
  return {
    txn: decodeTxn(body),
    ops: decodeOps(body.ops),
    ...(coordinator === undefined ? {} : { coordinator: coordinator as string }),
    ...(participants === undefined ? {} : { peers: participants as string[] }),
    onePhase: body.onePhase === true,
  }
}

/** Whom this participant may ask in doubt, from its configuration (`--coordinator`, `--peer`);
 * empty lists trust what each prepare names (the classic exercise's open mode). */
export type Trusted = { coordinators: readonly string[]; peers: readonly string[] }

/** The prepare's whom-to-ask, checked against the configuration: a coordinator that is not one
 * of the configured ones is refused (an outsider's "coordinator" must never be obeyed), and
 * peers outside the list are dropped. A prepare that names no coordinator gets none: asked
 * about a transaction it never ran, a coordinator would answer `unknown`, which means abort,
 * while the batch coordinator that did run it may have committed. */
export function trustedContext(
  p: PrepareRequest,
  trusted: Trusted,
): { coordinator?: string; peers?: string[] } {
  const { coordinators, peers } = trusted
  if (p.coordinator !== undefined && coordinators.length > 0) {
    if (!coordinators.includes(p.coordinator)) {
      throw new WireError(
        `invalid "coordinator" ${JSON.stringify(p.coordinator)}: not one this participant ` +
          'is configured to ask (--coordinator)',
      )
    }
  }
  const coordinator = p.coordinator
  const named = peers.length > 0 ? p.peers?.filter((u) => peers.includes(u)) : p.peers
  return {
    ...(coordinator !== undefined ? { coordinator } : {}),
    ...(named !== undefined ? { peers: named } : {}),
  }
}

export function decodeOps(value: unknown): Op[] {
  if (value === undefined) return []
  try {
    return parseOps(value)
  } catch (error) {
    if (error instanceof OpError) throw new WireError(error.message)
    throw error
  }
}

export function decodeDecision(body: Body): Decision {
  if (body.decision === 'commit' || body.decision === 'abort') return body.decision
  throw new WireError(
    `invalid "decision" ${JSON.stringify(body.decision)}: expected commit or abort`,
  )
}

function isHttpUrl(value: unknown): boolean {
  return typeof value === 'string' && value.length <= 2048 && /^https?:\/\/[^\s]+$/.test(value)
}

export type EncodedReply = { status: number; body: Record<string, unknown> }

/** A reply as its status and JSON body: a refusal is 409, a store that failed is 503. */
export function encodeReply(reply: Reply): EncodedReply {
  if (reply.kind === 'conflict') {
    return { status: 409, body: { error: reply.error, txn: reply.txn } }
  }
  if (reply.kind === 'unavailable') {
    return { status: 503, body: { error: reply.error, txn: reply.txn } }
  }
  if (reply.kind === 'vote') {
    return { status: 200, body: { txn: reply.txn, vote: reply.vote, reason: reply.reason } }
  }
  const state = reply.kind === 'uncertain' ? 'prepared' : reply.state
  return { status: 200, body: { txn: reply.txn, state } }
}

/** The classic exercise's plain-text answer to a reply whose status is 200. */
export function plainText(reply: Reply): string {
  if (reply.kind === 'vote') return reply.vote
  return String(encodeReply(reply).body.state)
}

/** The reply a participant's JSON answer carries (the inverse of encodeReply), or null when
 * the answer is not one (another service, a server error). */
export function decodeReply(txn: string, status: number, body: unknown): Reply | null {
  const b = (typeof body === 'object' && body !== null ? body : {}) as Body
  const error = typeof b.error === 'string' ? b.error : `HTTP ${status}`
  if (status === 409) return { kind: 'conflict', txn, error }
  if (status === 503) return { kind: 'unavailable', txn, error }
  if (status !== 200) return null
  if (b.vote === 'yes' || b.vote === 'no' || b.vote === 'read-only') {
    return {
      kind: 'vote',
      txn,
      vote: b.vote,
      reason: typeof b.reason === 'string' ? b.reason : null,
    }
  }
  if (b.state === 'committed' || b.state === 'aborted')
    return { kind: 'outcome', txn, state: b.state }
  if (b.state === 'prepared') return { kind: 'uncertain', txn }
  return null
}
