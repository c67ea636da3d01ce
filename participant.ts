// A participant node: guards a resource, votes on prepare, and records the outcome.
//   bun participant.ts [--port 9000] [--host 0.0.0.0] [--dir .] [--in-doubt-after MS]
//   bun participant.ts resolve TXN commit|abort [--dir .]   (operator's heuristic outcome)
import { Hono, type Context } from 'hono'
import { HTTPException } from 'hono/http-exception'
import { parseArgs } from 'node:util'
import { join, resolve } from 'node:path'
import { httpError, readJsonObject, useJsonErrors, wantsJson } from './lib/http-app.ts'
import {
  ParticipantNode,
  UsageError,
  fail,
  isTxnId,
  MAX_BATCH,
  parseMs,
  parsePort,
  readVotesFile,
  resolveHeuristically,
  txnIdError,
  writeAddressFile,
  OpError,
  StoreUnavailable,
  SqliteStore,
  parseOps,
  type ParticipantStore,
  type Decision,
  type Op,
  type Reply,
} from './lib.ts'

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

async function serve(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      dir: { type: 'string' },
      'in-doubt-after': { type: 'string' },
      store: { type: 'string' },
    },
    strict: true,
  })
  const dir = resolve(values.dir ?? '.')
  const port = parsePort(values.port ?? Bun.env.PORT ?? '9000', 'port')
  const hostname = values.host ?? Bun.env.HOST ?? '0.0.0.0'
  const inDoubtAfterMs = parseMs(values['in-doubt-after'] ?? '5000', 'in-doubt-after')
  const store = await openStore(values.store ?? 'sqlite', dir)
  const node = new ParticipantNode(dir, readVotesFile(dir), { inDoubtAfterMs, store })
  await node.start()
  const app = createApp(node)
  // One request to ourselves before listening: Hono builds its router on the first request,
  // a couple of milliseconds that would otherwise fall on the first prepare.
  await app.request('/healthz')
  const server = Bun.serve({ port, hostname, fetch: app.fetch })
  const url = `http://${hostname}:${server.port}`
  writeAddressFile(dir, url)
  console.log(`participant listening on ${url} (dir ${dir})`)
  const stop = () => void server.stop().then(() => process.exit(0))
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

/** `--store sqlite` (default: SQLite in the node's directory), `--store postgres://…`, or
 * `--store postgres`: a private throwaway PostgreSQL cluster under DIR/postgres, for trying out. */
async function openStore(spec: string, dir: string): Promise<ParticipantStore> {
  if (spec === 'sqlite') return new SqliteStore(dir)
  const url = /^postgres(ql)?:\/\//.test(spec)
  if (!url && spec !== 'postgres') {
    throw new UsageError(
      `invalid --store ${JSON.stringify(spec)}: expected sqlite, postgres or a postgres:// URL`,
    )
  }
  // PostgreSQL support is loaded only when it is asked for.
  const { PgStore } = await import('./lib/store/pg-store.ts')
  if (url) return new PgStore(spec)
  const { startPgCluster } = await import('./lib/pg-cluster.ts')
  const cluster = await startPgCluster(join(dir, 'postgres'), { adopt: true })
  console.log(`private PostgreSQL at ${cluster.url} (data ${cluster.dataDir})`)
  process.on('exit', () => void cluster.stop())
  return new PgStore(cluster.url)
}

async function resolveCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { dir: { type: 'string' } },
    allowPositionals: true,
    strict: true,
  })
  const [txn, decision] = positionals
  if (positionals.length !== 2 || (decision !== 'commit' && decision !== 'abort')) {
    throw new UsageError('usage: participant.ts resolve TXN commit|abort [--dir DIR]')
  }
  if (!isTxnId(txn)) throw new UsageError(`invalid transaction id ${JSON.stringify(txn)}`)
  console.log(await resolveHeuristically(resolve(values.dir ?? '.'), txn, decision))
}

if (import.meta.main) {
  try {
    const argv = Bun.argv.slice(2)
    if (argv[0] === 'resolve') await resolveCommand(argv.slice(1))
    else await serve(argv)
  } catch (error) {
    fail(error)
  }
}
