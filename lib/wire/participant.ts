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
  type StateReport,
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
  /** The other coordinators on the same shared log, to ask when `coordinator` does not answer. */
  coordinators?: string[]
  peers?: string[]
  onePhase: boolean
  /** Three-phase commit, and who the recipient is among `peers`. */
  three?: { self: string }
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
  const others = body.coordinators
  const othersOk =
    others === undefined ||
    (Array.isArray(others) && others.length <= 16 && others.every(isHttpUrl))
  if (!othersOk) throw new WireError('invalid "coordinators": expected up to 16 http(s) URLs')
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
    ...(others === undefined ? {} : { coordinators: others as string[] }),
    ...(participants === undefined ? {} : { peers: participants as string[] }),
    onePhase: body.onePhase === true,
    ...threeOf(body, participants as string[] | undefined),
  }
}

/** A three-phase prepare names every participant and which one the recipient is: its quorums
 * are majorities of that list. */
function threeOf(body: Body, participants: string[] | undefined): { three?: { self: string } } {
  if (body.protocol === undefined || body.protocol === '2pc') return {}
  if (body.protocol !== '3pc') {
    throw new WireError(`invalid "protocol" ${JSON.stringify(body.protocol)}: expected 2pc or 3pc`)
  }
  const self = body.self
  if (participants === undefined || typeof self !== 'string' || !participants.includes(self)) {
    throw new WireError('a 3pc prepare names "participants" and "self", one of them')
  }
  return { three: { self } }
}

/** Whom this participant may ask in doubt, from its configuration (`--coordinator`, `--peer`);
 * empty lists trust what each prepare names (the classic exercise's open mode). */
export type Trusted = { coordinators: readonly string[]; peers: readonly string[] }

/** The prepare's whom-to-ask, checked against the configuration: a coordinator that is not one
 * of the configured ones is refused (an outsider's "coordinator" must never be obeyed), and
 * peers outside the list are dropped. A prepare that names no coordinator gets none: asked
 * about a transaction it never ran, a coordinator would answer `unknown`, which means abort,
 * while the batch coordinator that did run it may have committed. */
/** Whom to ask in doubt, once checked: what a participant keeps of a prepare's context. */
export type TrustedContext = {
  coordinator?: string
  coordinators?: string[]
  peers?: string[]
  three?: { self: string }
}

export function trustedContext(p: PrepareRequest, trusted: Trusted): TrustedContext {
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
  // Only configured coordinators are asked, as for `coordinator`; and none without it.
  const others =
    coordinator === undefined
      ? undefined
      : p.coordinators?.filter(
          (u) => u !== coordinator && (coordinators.length === 0 || coordinators.includes(u)),
        )
  // Three-phase quorums are majorities of every participant: none may be dropped, so one that
  // is not configured refuses the prepare instead.
  const outsider = p.three && p.peers?.find((u) => u !== p.three!.self && !peers.includes(u))
  if (peers.length > 0 && outsider) {
    throw new WireError(`invalid "participants": ${outsider} is not a configured --peer`)
  }
  const named = peers.length > 0 ? p.peers?.filter((u) => peers.includes(u)) : p.peers
  return {
    ...(coordinator !== undefined ? { coordinator } : {}),
    ...(others?.length ? { coordinators: others } : {}),
    ...(named !== undefined ? { peers: p.three ? p.peers! : named } : {}),
    ...(p.three ? { three: p.three } : {}),
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
  if (reply.kind === 'superseded') {
    const error = `transaction "${reply.txn}" is in termination attempt ${reply.lastElected}`
    return { status: 409, body: { error, txn: reply.txn, superseded: reply.lastElected } }
  }
  if (reply.kind === 'report') {
    return { status: 200, body: { txn: reply.txn, attempt: reply.attempt, report: reply.report } }
  }
  if (reply.kind === 'pre') {
    return { status: 200, body: { txn: reply.txn, state: reply.state, attempt: reply.attempt } }
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
  if (status === 409 && isAttempt(b.superseded)) {
    return { kind: 'superseded', txn, lastElected: b.superseded }
  }
  if (status === 409) return { kind: 'conflict', txn, error }
  if (status === 503) return { kind: 'unavailable', txn, error }
  if (status !== 200) return null
  const report = decodeStateReport(b.report)
  if (report !== null && isAttempt(b.attempt)) {
    return { kind: 'report', txn, attempt: b.attempt, report }
  }
  if ((b.state === 'precommitted' || b.state === 'preaborted') && isAttempt(b.attempt)) {
    return { kind: 'pre', txn, state: b.state, attempt: b.attempt }
  }
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

/** An attempt number of three-phase termination: a whole number, at most 2^31. */
export function isAttempt(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0 && (value as number) <= 2 ** 31
}

const STATES = ['unknown', 'prepared', 'precommitted', 'preaborted', 'committed', 'aborted']

/** A state report of three-phase termination, or null when `value` is not one. */
export function decodeStateReport(value: unknown): StateReport | null {
  if (typeof value !== 'object' || value === null) return null
  const v = value as Body
  if (typeof v.state !== 'string' || !STATES.includes(v.state)) return null
  const lastAttempt = v.lastAttempt === -1 ? -1 : isAttempt(v.lastAttempt) ? v.lastAttempt : null
  if (!isAttempt(v.lastElected) || lastAttempt === null) return null
  const state = v.state as StateReport['state']
  return { state, lastElected: v.lastElected, lastAttempt }
}

/** `{"txn", "attempt"}` of a three-phase message (precommit, preabort, state-request). */
export function decodeAttempt(body: Body): { txn: string; attempt: number } {
  const txn = decodeTxn(body)
  if (!isAttempt(body.attempt)) {
    throw new WireError(`invalid "attempt" ${JSON.stringify(body.attempt)}: expected 0-2147483648`)
  }
  return { txn, attempt: body.attempt }
}
