// The participant's HTTP face: the classic endpoints (plain-text answers), the batch endpoint
// the coordinator service uses, the operator's /resolve, and the read-only views.
import { Hono, type Context } from 'hono'
import { HTTPException } from 'hono/http-exception'
import { httpError, readJsonObject, useJsonErrors, wantsJson } from './json-errors.ts'
import {
  isTxnId,
  parseOps,
  txnIdError,
  OpError,
  type Decision,
  type Op,
  type Reply,
} from '../core/index.ts'
import { MAX_BATCH } from '../node/sender.ts'
import type { ParticipantNode } from '../node/participant-node.ts'
import { StoreUnavailable } from '../store/store.ts'

export function createApp(node: ParticipantNode): Hono {
  const app = new Hono()
  useJsonErrors(app)
  let requests = 0 // protocol requests received, for benchmarks
  app.use(async (c, next) => {
    if (c.req.method === 'POST') requests += 1
    await next()
  })
  app.post('/prepare', async (c) => {
    const body = await readJsonObject(c)
    return answer(c, await node.prepare(txnOf(body), opsOf(body), contextOf(body)))
  })
  app.post('/commit', async (c) => answer(c, await decide(node, c, 'commit')))
  app.post('/abort', async (c) => answer(c, await decide(node, c, 'abort')))
  app.post('/batch', async (c) => {
    const body = await readJsonObject(c)
    const messages = body.messages
    if (!Array.isArray(messages) || messages.length > MAX_BATCH) {
      throw httpError(400, `invalid "messages": expected an array of at most ${MAX_BATCH}`)
    }
    // All at once: their log records share a flush (group commit).
    return c.json({ replies: await Promise.all(messages.map((m) => batchItem(node, m))) })
  })
  app.post('/decision-request', async (c) => {
    const txn = txnOf(await readJsonObject(c))
    return answer(c, await node.handle({ type: 'decision-request', txn }), true)
  })
  app.post('/resolve', async (c) => {
    const body = await readJsonObject(c)
    const event = { type: 'resolve', txn: txnOf(body), decision: decisionOf(body) } as const
    return answer(c, await node.handle(event), true)
  })
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
  app.get('/status', (c) => c.json(statusOf(node)))
  // Counters for benchmarks: forced writes (store commits) and protocol requests received.
  app.get('/metrics', (c) => c.json({ flushes: node.store.flushes, requests }))
  app.get('/healthz', (c) => c.json({ ok: true }))
  return app
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

async function decide(node: ParticipantNode, c: Context, decision: Decision): Promise<Reply> {
  return node.handle({ type: 'decide', txn: txnOf(await readJsonObject(c)), decision })
}

function opsOf(body: Record<string, unknown>): Op[] {
  if (body.ops === undefined) return []
  try {
    return parseOps(body.ops)
  } catch (error) {
    if (error instanceof OpError) throw httpError(400, error.message)
    throw error
  }
}

function limitOf(value: string | undefined): number {
  if (value === undefined) return 100
  const limit = Number(value)
  if (!/^\d+$/.test(value) || limit < 1 || limit > 10_000) {
    throw httpError(400, `invalid limit ${JSON.stringify(value)}: expected 1-10000`)
  }
  return limit
}

function txnOf(body: Record<string, unknown>): string {
  if (!isTxnId(body.txn)) throw httpError(400, txnIdError(body.txn))
  return body.txn
}

function decisionOf(body: Record<string, unknown>): Decision {
  if (body.decision === 'commit' || body.decision === 'abort') return body.decision
  throw httpError(
    400,
    `invalid "decision" ${JSON.stringify(body.decision)}: expected commit or abort`,
  )
}

/** Whom to ask if the transaction ends up in doubt: optional, but checked when given. */
function contextOf(body: Record<string, unknown>): { coordinator?: string; peers?: string[] } {
  const { coordinator, participants } = body
  if (coordinator !== undefined && !isHttpUrl(coordinator)) {
    throw httpError(400, 'invalid "coordinator": expected an http(s) URL')
  }
  const peersOk =
    participants === undefined ||
    (Array.isArray(participants) && participants.length <= 64 && participants.every(isHttpUrl))
  if (!peersOk) throw httpError(400, 'invalid "participants": expected up to 64 http(s) URLs')
  return {
    ...(coordinator === undefined ? {} : { coordinator: coordinator as string }),
    ...(participants === undefined ? {} : { peers: participants as string[] }),
  }
}

/** `onePhase: true` asks the only participant to prepare and commit in one step. */
function onePhaseOf(body: Record<string, unknown>): boolean {
  if (body.onePhase === undefined || typeof body.onePhase === 'boolean')
    return body.onePhase === true
  throw httpError(400, 'invalid "onePhase": expected true or false')
}

function isHttpUrl(value: unknown): boolean {
  return typeof value === 'string' && value.length <= 2048 && /^https?:\/\/[^\s]+$/.test(value)
}

/** One message of a batch, answered as its own endpoint would answer it in JSON. */
async function batchItem(node: ParticipantNode, message: unknown): Promise<JsonReply> {
  try {
    if (typeof message !== 'object' || message === null) throw httpError(400, 'invalid message')
    const m = message as Record<string, unknown>
    const txn = txnOf(m)
    if (m.type === 'prepare') {
      const reply = await node.prepare(txn, opsOf(m), contextOf(m), false, onePhaseOf(m))
      return jsonOf(reply)
    }
    if (m.type === 'commit' || m.type === 'abort') {
      return jsonOf(await node.handle({ type: 'decide', txn, decision: m.type }, false))
    }
    throw httpError(400, `invalid message type ${JSON.stringify(m.type)}`)
  } catch (error) {
    if (error instanceof HTTPException) {
      return { status: error.status, body: (await error.getResponse().json()) as object }
    }
    if (error instanceof StoreUnavailable) return { status: 503, body: { error: error.message } }
    throw error
  }
}

type JsonReply = { status: number; body: object }

function jsonOf(reply: Reply): JsonReply {
  if (reply.kind === 'conflict')
    return { status: 409, body: { error: reply.error, txn: reply.txn } }
  if (reply.kind === 'vote') {
    return { status: 200, body: { txn: reply.txn, vote: reply.vote, reason: reply.reason } }
  }
  const state = reply.kind === 'uncertain' ? 'prepared' : reply.state
  return { status: 200, body: { txn: reply.txn, state } }
}

/** The classic answers are plain text (`yes`, `no`, `committed`); JSON on request. */
function answer(c: Context, reply: Reply, json = wantsJson(c)): Response {
  const { status, body } = jsonOf(reply)
  if (json || status !== 200) return c.json(body, status as 200 | 409)
  return c.text(reply.kind === 'vote' ? reply.vote : (body as { state: string }).state)
}
