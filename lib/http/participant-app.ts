// The participant's HTTP face: the classic endpoints (plain-text answers), the batch endpoint
// the coordinator service uses, the operator's /resolve, and the read-only views. Bodies are
// decoded and replies encoded by the one codec, lib/wire/participant.ts.
import { Hono, type Context } from 'hono'
import { HTTPException } from 'hono/http-exception'
import { OPEN, useAuth, type Credentials, type Gate } from './auth.ts'
import { useChannel, type FrameAnswerer } from './channel.ts'
import {
  MAX_BODY_BYTES,
  TOO_LARGE,
  httpError,
  jsonObjectOf,
  readJsonObject,
  thrownAnswer,
  useJsonErrors,
  wantsJson,
} from './json-errors.ts'
import { isTxnId, txnIdError, type Decision, type Reply } from '../core/index.ts'
import type { ParticipantNode } from '../node/participant-node.ts'
import { orAfter } from '../node/ports.ts'
import { StoreUnavailable } from '../store/store.ts'
import { participantMetrics } from '../node/metrics.ts'
import { useMetrics } from './metrics-routes.ts'
import {
  WireError,
  decodeAttempt,
  decodeBatch,
  decodeDecision,
  decodePrepare,
  decodeTxn,
  encodeReply,
  plainText,
  type Body,
  type EncodedReply,
  type PrepareRequest,
  trustedContext,
} from '../wire/participant.ts'
import { refuseSql } from '../wire/sql.ts'

/** How long a POST /batch waits for its slowest message. When it is up, the batch answers what
 * is finished, and each message still running gets a 503 item (`stillRunning`): to the
 * coordinator that is no answer yet, and it sends the message again after a backoff, while the
 * first keeps running here and the repeat gets its answer (every message is idempotent). A
 * tenth of the coordinator's request timeout (5 s), a twentieth of its prepare timeout (10 s);
 * an answer normally takes milliseconds. */
export const BATCH_WAIT_MS = 500

export type AppOptions = {
  /** Instead of BATCH_WAIT_MS; Infinity waits for every message. */
  batchWaitMs?: number
}

/** The participant's app around `node`; with a secret in `credentials`, only nodes that prove
 * it are heard (a client token opens nothing here). */
export function createApp(
  node: ParticipantNode,
  credentials: Credentials = OPEN,
  options: AppOptions = {},
): Hono {
  const batchWaitMs = options.batchWaitMs ?? BATCH_WAIT_MS
  const app = new Hono()
  useJsonErrors(app)
  const gate = useAuth(app, credentials, node.ports.now)
  let requests = 0 // protocol requests (and frames) received, for benchmarks
  useChannel(
    app,
    frameAnswerer(node, gate, batchWaitMs, () => void (requests += 1)),
  )
  const metrics = participantMetrics(node)
  app.use(async (c, next) => {
    if (c.req.method === 'POST') requests += 1
    if (c.req.method === 'POST' && c.req.path !== '/batch') received(node, c.req.path.slice(1))
    await next()
  })
  app.post('/prepare', async (c) => {
    const p = decoded(decodePrepare, await readJsonObject(c))
    decoded(() => refuseSql(p.ops, node.allowSql), undefined)
    const context = decoded((q: PrepareRequest) => trustedContext(q, node.trusted), p)
    return answer(c, await node.prepare(p.txn, p.ops, context))
  })
  app.post('/commit', async (c) => answer(c, await decide(node, c, 'commit')))
  app.post('/abort', async (c) => answer(c, await decide(node, c, 'abort')))
  app.post('/batch', async (c) =>
    c.json({ replies: await batchReplies(node, await readJsonObject(c), batchWaitMs) }),
  )
  // Three-phase commit (lib/core/three-phase.ts): the coordinator's and terminators' messages.
  app.post('/precommit', async (c) => answer(c, await pre(node, c, 'commit'), true))
  app.post('/preabort', async (c) => answer(c, await pre(node, c, 'abort'), true))
  app.post('/state-request', async (c) => {
    const { txn, attempt } = decoded(decodeAttempt, await readJsonObject(c))
    const event = { type: 'state-request', txn, attempt, now: node.ports.now() } as const
    return answer(c, await node.handle(event), true)
  })
  app.post('/decision-request', async (c) => {
    const txn = decoded(decodeTxn, await readJsonObject(c))
    return answer(c, await node.handle({ type: 'decision-request', txn }), true)
  })
  app.post('/resolve', async (c) => {
    const body = await readJsonObject(c)
    const txn = decoded(decodeTxn, body)
    const event = { type: 'resolve', txn, decision: decoded(decodeDecision, body) } as const
    return answer(c, await node.handle(event), true)
  })
  useReads(app, node)
  app.get('/status', (c) => c.json(statusOf(node)))
  // Prometheus; and for benchmarks forced writes (store commits) and protocol requests received.
  useMetrics(app, metrics, () => ({ flushes: node.store.flushes, requests }))
  app.get('/healthz', (c) => c.json({ ok: true }))
  return app
}

/** The read-only views: one transaction's state, and the committed data. */
function useReads(app: Hono, node: ParticipantNode): void {
  app.get('/transactions/:txn', (c) => {
    const txn = c.req.param('txn')
    if (!isTxnId(txn)) throw httpError(400, txnIdError(txn))
    const t = node.state(txn)
    return c.json({ txn, state: t.state, vote: t.vote, reason: t.reason, heuristic: t.heuristic })
  })
  app.get('/kv/:key', async (c) => {
    const key = c.req.param('key')
    const value = await node.store.get(key)
    if (value === undefined) return c.json({ error: `no such key: ${key}`, key }, 404)
    return c.json({ key, value })
  })
  app.get('/kv', async (c) => {
    const prefix = c.req.query('prefix') ?? ''
    const limit = limitOf(c.req.query('limit'))
    return c.json({ items: await node.store.list(prefix, limit) })
  })
}

/** Counts a protocol message by its type: a known one, so no request names a new series. */
function received(node: ParticipantNode, type: string): void {
  if (!MESSAGE_TYPES.has(type)) return
  for (const o of node.observers) o.received?.(type)
}

const MESSAGE_TYPES = new Set([
  'prepare',
  'commit',
  'abort',
  'precommit',
  'preabort',
  'state-request',
  'decision-request',
  'resolve',
])

/** `decode(input)`, with a malformed request answered 400 (it changes nothing). */
function decoded<A, T>(decode: (input: A) => T, input: A): T {
  try {
    return decode(input)
  } catch (error) {
    if (error instanceof WireError) throw httpError(400, error.message)
    throw error
  }
}

function statusOf(node: ParticipantNode) {
  const txns = [...node.txns.values()]
  return {
    role: 'participant',
    dir: node.dir,
    counts: node.counts(),
    prepared: txns.filter((t) => t.state === 'prepared').map((t) => t.txn),
    inDoubt: node.inDoubt(),
    heuristic: txns.filter((t) => t.heuristic).map((t) => ({ txn: t.txn, state: t.state })),
    locks: Object.fromEntries(node.store.locks()),
  }
}

async function pre(node: ParticipantNode, c: Context, decision: Decision): Promise<Reply> {
  const { txn, attempt } = decoded(decodeAttempt, await readJsonObject(c))
  return node.handle({ type: 'pre', txn, decision, attempt, now: node.ports.now() })
}

async function decide(node: ParticipantNode, c: Context, decision: Decision): Promise<Reply> {
  const txn = decoded(decodeTxn, await readJsonObject(c))
  return node.handle({ type: 'decide', txn, decision })
}

function limitOf(value: string | undefined): number {
  if (value === undefined) return 100
  const limit = Number(value)
  if (!/^\d+$/.test(value) || limit < 1 || limit > 10_000) {
    throw httpError(400, `invalid limit ${JSON.stringify(value)}: expected 1-10000`)
  }
  return limit
}

/** The replies to a POST /batch body. */
function batchReplies(node: ParticipantNode, body: Body, batchWaitMs: number) {
  const messages = decoded(decodeBatch, body)
  // All at once: their log records share a flush (group commit).
  const items = messages.map((m) => batchItem(node, m))
  return within(items, batchWaitMs, node.ports)
}

/** POST /batch for a body that came on the channel: the checks a request meets on its way to
 * the route, in the same order (the body limit of useJsonErrors, then useAuth's proof, against
 * the same replay guard), then the route's own handler, and an error answered as onError
 * answers it: the answer is the request's, byte for byte (tests/channel.test.ts). */
function frameAnswerer(
  node: ParticipantNode,
  gate: Gate | null,
  batchWaitMs: number,
  counted: () => void,
): FrameAnswerer {
  const answer = (status: number, body: object) => ({ status, body: JSON.stringify(body) })
  return async (proof, text) => {
    try {
      if (Buffer.byteLength(text) > MAX_BODY_BYTES) return answer(413, { error: TOO_LARGE })
      const request = { method: 'POST', path: '/batch', body: text }
      const problem = gate === null ? null : gate(request, proof === '' ? undefined : proof)
      if (problem !== null) return answer(401, { error: `unauthorized: ${problem}` })
      counted()
      return answer(200, { replies: await batchReplies(node, jsonObjectOf(text), batchWaitMs) })
    } catch (error) {
      const thrown = thrownAnswer(error)
      if (thrown instanceof Response) return { status: thrown.status, body: await thrown.text() }
      return answer(thrown.status, { error: thrown.error })
    }
  }
}

/** One message of a batch, answered as its own endpoint would answer it in JSON. A batch's
 * outcome records may share a later flush; each reply still waits until its own is durable. */
async function batchItem(node: ParticipantNode, message: unknown): Promise<EncodedReply> {
  try {
    if (typeof message !== 'object' || message === null) throw new WireError('invalid message')
    const m = message as Body
    if (typeof m.type === 'string') received(node, m.type)
    if (m.type === 'prepare') {
      const p = decodePrepare(m)
      refuseSql(p.ops, node.allowSql)
      const context = trustedContext(p, node.trusted)
      return encodeReply(await node.prepare(p.txn, p.ops, context, false, p.onePhase))
    }
    if (m.type === 'precommit' || m.type === 'preabort') {
      const { txn, attempt } = decodeAttempt(m)
      const decision = m.type === 'precommit' ? 'commit' : 'abort'
      const event = { type: 'pre', txn, decision, attempt, now: node.ports.now() } as const
      return encodeReply(await node.handle(event, false))
    }
    if (m.type === 'commit' || m.type === 'abort') {
      const event = {
        type: 'decide',
        txn: decodeTxn(m),
        decision: m.type,
        shareFlush: true,
      } as const
      return encodeReply(await node.handle(event, false))
    }
    throw new WireError(`invalid message type ${JSON.stringify(m.type)}`)
  } catch (error) {
    if (error instanceof WireError) return { status: 400, body: { error: error.message } }
    if (error instanceof HTTPException) {
      return { status: error.status, body: (await error.getResponse().json()) as Body }
    }
    if (error instanceof StoreUnavailable) return { status: 503, body: { error: error.message } }
    throw error
  }
}

/** The replies of `items` that are in after `ms`, and a 503 item (no answer yet) for each still
 * running; all of them as soon as they are all in. One that throws (a bug) fails the batch, as
 * it would without the bound. */
async function within(
  items: Promise<EncodedReply>[],
  ms: number,
  ports: ParticipantNode['ports'],
): Promise<EncodedReply[]> {
  if (ms === Infinity) return Promise.all(items)
  const replies: (EncodedReply | undefined)[] = new Array(items.length)
  const all = Promise.all(items.map(async (item, i) => void (replies[i] = await item)))
  await orAfter(ports, all, ms, undefined)
  return Array.from(replies, (reply) => reply ?? stillRunning(ms)) // holes too, unlike map
}

function stillRunning(ms: number): EncodedReply {
  return { status: 503, body: { error: `still running after ${ms} ms: send it again` } }
}

/** The classic answers are plain text (`yes`, `no`, `committed`); JSON on request. */
function answer(c: Context, reply: Reply, json = wantsJson(c)): Response {
  const { status, body } = encodeReply(reply)
  if (json || status !== 200) return c.json(body, status as 200 | 409 | 503)
  return c.text(plainText(reply))
}
