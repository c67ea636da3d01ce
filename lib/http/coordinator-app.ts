// The coordinator service's HTTP API: start transactions, look them up, see the cluster.
import { Hono, type Context } from 'hono'
import { OPEN, admittedByToken, useAuth, type Credentials } from './auth.ts'
import type { CoordinatorNode } from '../node/coordinator-node.ts'
import { orAfter } from '../node/ports.ts'
import {
  MAX_OPS,
  OpError,
  isTxnId,
  parseOps,
  txnIdError,
  coordinatorAnswer,
  type CoordinatorTxn,
  type Op,
} from '../core/index.ts'
import { httpError, readJsonObject, useJsonErrors } from './json-errors.ts'
import { encodeCoordinatorAnswer } from '../wire/in-doubt.ts'
import { newTxnId } from '../wire/coordinator.ts'
import { SQL_NEEDS_CLUSTER, carriesSql } from '../wire/sql.ts'
import { coordinatorMetrics } from '../node/metrics.ts'
import { useMetrics } from './metrics-routes.ts'
import { useDashboardData, useDashboardPage } from './dashboard/index.ts'

export type CoordinatorApiOptions = {
  participants: readonly string[]
  /** Names given with `--participant NAME=host:port`, to address participants in `ops`. */
  names?: Readonly<Record<string, string>>
  /** How long POST /transactions waits for acknowledgements after the decision. */
  ackWaitMs: number
  /** The cluster's secret and the client tokens (by default: anyone is heard). */
  credentials?: Credentials
}

/** What a client token opens: the transactions API and the views, nothing a participant asks. */
function clientRoute(c: Context): boolean {
  const path = c.req.path
  if (c.req.method === 'POST') return path === '/transactions'
  const views = ['/status', '/metrics', '/metrics.json', '/events']
  return views.includes(path) || path.startsWith('/transactions/')
}

export function createCoordinatorApp(node: CoordinatorNode, options: CoordinatorApiOptions): Hono {
  const app = new Hono()
  useJsonErrors(app)
  useDashboardPage(app) // open: the page holds no data, and asks for a token when one is needed
  useAuth(app, options.credentials ?? OPEN, node.ports.now, clientRoute)
  useDashboardData(app, node, options.participants)
  app.post('/transactions', async (c) => {
    const body = await readJsonObject(c)
    const id = idOf(body)
    const protocol = body.protocol ?? '2pc'
    if (protocol !== '2pc' && protocol !== '3pc') {
      const got = JSON.stringify(body.protocol)
      throw httpError(400, `invalid "protocol" ${got}: expected "2pc" or "3pc"`)
    }
    if (options.participants.length === 0 && !node.txn(id)) {
      throw httpError(409, 'no participants configured: start the service with --participant')
    }
    const { involved, ops } = routeOps(body.ops, options)
    if (admittedByToken.has(c.req.raw) && carriesSql(body.ops)) {
      return c.json({ error: SQL_NEEDS_CLUSTER }, 403)
    }
    const decided = await decision(node, id, involved, ops, protocol)
    if (decided === null) {
      // Not decided within the prepare timeout: the transaction goes on, and the answer says so.
      const t = await sharedLogRead(() => node.lookup(id))
      // On a shared log the claim itself may still be on its way (the database slow): nothing
      // of the transaction is written yet, and nothing of it was sent.
      if (!t) return c.json({ id, decision: null, state: 'preparing', phase: 'preparing' }, 202)
      return c.json({ ...outcomeOf(t), state: 'preparing', phase: t.phase }, 202)
    }
    // With --ack-wait 0 the answer leaves at the commit point: the decision is durable. One
    // another coordinator on the shared log ran is answered as its records stand.
    const mine = node.txns.has(id)
    const settled =
      options.ackWaitMs > 0 && mine
        ? await orAfter(node.ports, node.when(id, 'done'), options.ackWaitMs, undefined)
        : decided
    return c.json(outcomeOf(settled ?? node.txn(id) ?? decided))
  })
  app.get('/transactions/:id', async (c) => {
    const id = c.req.param('id')
    if (!isTxnId(id)) throw httpError(400, txnIdError(id))
    const t = await sharedLogRead(() => node.lookup(id))
    // Under presumed abort, `unknown` means abort: nothing about it was ever committed here (on
    // a shared log: by any coordinator, since each claims a transaction before it prepares).
    if (!t) return c.json(encodeCoordinatorAnswer(id, coordinatorAnswer(undefined)))
    const state = coordinatorAnswer(t)
    const decision = state === 'commit' || state === 'abort' ? state : null // durable ones only
    return c.json({ ...outcomeOf(t), decision, state, phase: t.phase })
  })
  app.get('/status', async (c) => c.json(await statusOf(node, options.participants)))
  // Prometheus; and for benchmarks forced writes (log commits) and requests to participants.
  const counters = () => ({ flushes: node.log.flushes, requests: node.requests })
  useMetrics(app, coordinatorMetrics(node), counters)
  app.get('/healthz', (c) => c.json({ ok: true }))
  return app
}

/** The transaction's durable decision. A single participant is asked in one phase, which has no
 * prepare timeout (it may have committed on its own, so it is asked until it answers), and in
 * three-phase commit nothing times out after precommit (a quorum decides): while that waits,
 * the client gets null after the prepare timeout instead of waiting for ever. Two or more
 * participants in two-phase commit are decided by their prepare timeout at the latest. */
async function decision(
  node: CoordinatorNode,
  id: string,
  involved: string[],
  ops: Record<string, readonly Op[]>,
  protocol: '2pc' | '3pc',
): Promise<CoordinatorTxn | null> {
  const run = node.options.shared
    ? sharedLogRead(() => node.run(id, involved, ops, protocol))
    : node.run(id, involved, ops, protocol)
  const onePhase = involved.length === 1 && node.options.onePhase === true
  // On a shared log the transaction may be another coordinator's, decided when it gets to it.
  if (protocol === '2pc' && !onePhase && !node.options.shared) return run
  // Three-phase: what the prepare timeout aborts is answered as in two-phase commit.
  const waitMs = (node.options.timeoutMs ?? 10_000) * (protocol === '3pc' ? 2 : 1)
  return orAfter(node.ports, run, waitMs, null)
}

/** A read or claim on the shared log; the database out of reach is a 503 the client may retry. */
async function sharedLogRead<T>(read: () => Promise<T>): Promise<T> {
  try {
    return await read()
  } catch (error) {
    throw httpError(503, `the shared log is unavailable: ${(error as Error).message ?? error}`)
  }
}

type Routed = { involved: string[]; ops: Record<string, readonly Op[]> }

/** Which participants a transaction involves, and the operations each is asked to prepare:
 * none (every participant votes), one list for all (a replicated write), or a list per
 * participant named by index, name or URL (those without operations are not involved). */
function routeOps(value: unknown, options: CoordinatorApiOptions): Routed {
  const all = [...options.participants]
  if (value === undefined) return { involved: all, ops: {} }
  if (Array.isArray(value)) {
    const ops = parseOrThrow(value, 'ops')
    return { involved: all, ops: Object.fromEntries(all.map((p) => [p, ops])) }
  }
  if (typeof value !== 'object' || value === null) {
    throw httpError(400, 'invalid "ops": expected an array, or an object of arrays by participant')
  }
  const ops: Record<string, readonly Op[]> = {}
  for (const [key, list] of Object.entries(value)) {
    const url = participantOf(key, options)
    const parsed = parseOrThrow(list, `ops.${key}`)
    if (parsed.length > 0) ops[url] = [...(ops[url] ?? []), ...parsed]
  }
  const involved = all.filter((p) => ops[p] !== undefined)
  if (involved.length === 0) throw httpError(400, 'invalid "ops": no participant has operations')
  // One participant named several ways (index, name, URL) gets the lists together: they too
  // must fit in one prepare, which the participant would refuse (and the transaction abort).
  for (const p of involved) {
    if (ops[p]!.length > MAX_OPS) {
      throw httpError(400, `invalid "ops": more than ${MAX_OPS} operations for ${p}`)
    }
  }
  return { involved, ops }
}

function participantOf(key: string, options: CoordinatorApiOptions): string {
  const byIndex = /^\d+$/.test(key) ? options.participants[Number(key)] : undefined
  const url =
    byIndex ??
    (options.names && Object.hasOwn(options.names, key) ? options.names[key] : undefined) ??
    options.participants.find((p) => p === key)
  if (url === undefined) {
    throw httpError(
      400,
      `invalid "ops": no participant ${JSON.stringify(key)} (index, name or URL)`,
    )
  }
  return url
}

function parseOrThrow(value: unknown, at: string): Op[] {
  try {
    return parseOps(value)
  } catch (error) {
    if (error instanceof OpError) throw httpError(400, error.message.replace('"ops"', `"${at}"`))
    throw error
  }
}

function idOf(body: Record<string, unknown>): string {
  if (body.id === undefined) return newTxnId()
  if (!isTxnId(body.id)) throw httpError(400, txnIdError(body.id).replace('"txn"', '"id"'))
  return body.id
}

function outcomeOf(t: CoordinatorTxn) {
  return {
    id: t.txn,
    decision: t.logged ? t.decision : null, // told only once durable
    votes: Object.fromEntries(t.participants.map((p) => [p, t.votes[p] ?? null])),
    reasons: t.reasons,
    // Every participant confirmed the outcome (an abort under presumed abort is never
    // acknowledged, except by those that voted no and aborted on their own). A refusal is an
    // answer, not a confirmation: the outcome there differs.
    acknowledged: t.phase === 'done' && t.acks.length === t.participants.length && !mixed(t),
    ...(mixed(t) ? { heuristic: true, refusals: t.refusals } : {}),
    protocol: t.protocol ?? '2pc',
    ...(t.protocol === '3pc' ? { precommitted: precommittedOf(t) } : {}),
  }
}

/** Three-phase: who is precommitted (so far, or when commit was decided). */
function precommittedOf(t: CoordinatorTxn): readonly string[] {
  return t.precommitted ?? (t.phase === 'precommitting' ? t.acks : [])
}

/** Some participant refused the decision: its outcome differs (an operator's heuristic). */
function mixed(t: CoordinatorTxn): boolean {
  return Object.keys(t.refusals).length > 0
}

async function statusOf(node: CoordinatorNode, participants: readonly string[]) {
  const counts = { preparing: 0, commit: 0, abort: 0, delivering: 0, precommitting: 0 }
  const delivering: { id: string; decision: string | null; waitingFor: string[] }[] = []
  const heuristic: { id: string; decision: string | null; refusals: Record<string, string> }[] = []
  for (const t of node.txns.values()) {
    // Only a durable decision is shown: one still being written could be undone by a crash.
    counts[t.logged && t.decision !== null ? t.decision : 'preparing'] += 1
    if (t.phase === 'precommitting') counts.precommitting += 1 // three-phase, among preparing
    if (mixed(t) && heuristic.length < 100) {
      heuristic.push({ id: t.txn, decision: t.decision, refusals: { ...t.refusals } })
    }
    if (t.phase === 'deciding') {
      counts.delivering += 1
      const waitingFor = t.participants.filter((p) => !t.acks.includes(p))
      const decision = t.logged ? t.decision : null
      if (delivering.length < 100) delivering.push({ id: t.txn, decision, waitingFor })
    }
  }
  const shared = node.options.shared
  // On a shared log: every coordinator on it and its lease (null: the database is out of reach).
  const coordinators = shared && (await shared.members().catch(() => null))
  return {
    role: 'coordinator',
    ...(shared ? { coordinators } : {}),
    participants: await Promise.all(participants.map((url) => probe(node, url))),
    counts,
    delivering,
    heuristic,
  }
}

async function probe(node: CoordinatorNode, url: string) {
  const started = performance.now()
  const reply = await node.ports.request('GET', `${url}/healthz`, null, 1000)
  if (reply === null) return { url, reachable: false, ms: null }
  const ms = Math.round(performance.now() - started)
  return { url, reachable: reply.status >= 200 && reply.status < 300, ms }
}
