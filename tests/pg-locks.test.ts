// The PostgreSQL participant never waits on a lock: a prepare that meets another transaction's
// row lock votes `no` at once and names the lock; conflicting transfers leave no ERROR in the
// server's log; and a POST /batch answers what is finished without waiting for a slow message.
import { afterEach, expect, test } from 'bun:test'
import { SQL } from 'bun'
import { readFileSync, statSync } from 'node:fs'
import { CoordinatorNode, ParticipantNode, bunPorts, type Op, type Ports } from '../lib.ts'
import { BATCH_WAIT_MS, createApp } from '../lib/http/participant-app.ts'
import { LOCK_TIMEOUT_MS, openPgStore } from '../lib/store/pg-store.ts'
import { SqliteStore } from '../lib/store/sqlite-store.ts'
import type { PrepareContext } from '../lib/store/store.ts'
import {
  mulberry32,
  openAccounts,
  planTransfers,
  readBalances,
  runTransfers,
  waitSettled,
} from '../testing/bank.ts'
import {
  cleanup,
  startCoordinatorService,
  startParticipant,
  tempDir,
} from '../testing/processes.ts'
import { usePgCluster } from '../testing/pg.ts'

const pg = usePgCluster('twophase-pg-locks-')
const stops: (() => unknown)[] = []
afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop()
  await cleanup()
})

/** A "no" must come this fast: a behavioural bound (no wait on a lock), not a benchmark. */
const AT_ONCE_MS = 500

const { freshDatabase } = pg

async function withSql<T>(url: string, fn: (sql: SQL) => Promise<T>): Promise<T> {
  const sql = new SQL({ url, max: 1 })
  try {
    return await fn(sql)
  } finally {
    await sql.close()
  }
}

/** A participant on database `url`, in process (its app answers `app.request`). */
async function pgParticipant(url: string) {
  const store = await openPgStore(url, () => {})
  const node = new ParticipantNode(tempDir(), null, { store, inDoubtAfterMs: 60_000 })
  await node.start()
  stops.push(() => node.close())
  return { node, app: createApp(node) }
}

type App = ReturnType<typeof createApp>

async function post(app: App, path: string, body: object) {
  const started = performance.now()
  const response = await app.request(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify(body),
  })
  return { status: response.status, body: (await response.json()) as any, ms: elapsed(started) }
}

const elapsed = (since: number) => performance.now() - since

/** `promise`, or 'stalled' once `ms` have passed: a stall fails the test instead of hanging it
 * (a passing run never waits for this). */
function unlessStalled<T>(promise: Promise<T>, ms = 5000): Promise<T | 'stalled'> {
  const { promise: late, resolve } = Promise.withResolvers<'stalled'>()
  const timer = setTimeout(() => resolve('stalled'), ms)
  return Promise.race([promise.finally(() => clearTimeout(timer)), late])
}

const set = (key: string, value: number): Op[] => [{ op: 'set', key, value }]
const insert = (key: string, value: number): Op[] => [{ op: 'insert', key, value }]

test('a key held by a transaction prepared here: another prepare votes no at once', async () => {
  const { app, node } = await pgParticipant(await freshDatabase())
  expect((await post(app, '/prepare', { txn: 'seed', ops: set('k', 1) })).body.vote).toBe('yes')
  expect((await post(app, '/commit', { txn: 'seed' })).status).toBe(200)
  // Prepared only, no decision: A holds k (which existed), A2 holds fresh (which did not).
  for (const [txn, ops] of [
    ['A', set('k', 2)],
    ['A2', insert('fresh', 1)],
  ] as const) {
    expect((await post(app, '/prepare', { txn, ops })).body.vote).toBe('yes')
  }
  for (const [txn, ops, reason] of [
    ['B', [{ op: 'add', key: 'k', amount: 1 }], 'key k is locked by transaction A'],
    ['C', insert('fresh', 2), 'key fresh is locked by transaction A2'],
  ] as const) {
    const reply = await post(app, '/prepare', { txn, ops })
    expect(reply.body).toMatchObject({ txn, vote: 'no', reason })
    expect(reply.ms).toBeLessThan(AT_ONCE_MS)
  }
  for (const txn of ['A', 'A2']) await post(app, '/abort', { txn })
  expect(node.store.locks().size).toBe(0)
})

/** Leaves a transaction prepared in the database, outside the participant, that ran `sql`:
 * the participant's memory knows nothing of its locks, as in the moment two prepares of one
 * key meet in the database. */
async function preparedElsewhere(url: string, gid: string, sql: string): Promise<void> {
  await withSql(url, async (db) => {
    await db.unsafe(`BEGIN; ${sql}; PREPARE TRANSACTION '${gid}'`).simple()
  })
}

test('a row locked in PostgreSQL by a prepared transaction: no at once, naming it', async () => {
  const url = await freshDatabase()
  const { app } = await pgParticipant(url)
  expect((await post(app, '/prepare', { txn: 'seed', ops: set('k', 1) })).body.vote).toBe('yes')
  expect((await post(app, '/commit', { txn: 'seed' })).status).toBe(200)
  // k existed; fresh gets its row first as the participant's own prepare would give it
  // (committed, absent), then both are written by a transaction left prepared.
  await withSql(url, (db) => db`INSERT INTO twophase_kv (key) VALUES ('fresh')`)
  await preparedElsewhere(
    url,
    'elsewhere:1',
    `UPDATE twophase_kv SET value = '5', present = true WHERE key IN ('k', 'fresh')`,
  )
  // ghost's row itself is inserted by a transaction left prepared: an insert of the same key
  // can only wait for it, and lock_timeout cuts the wait short.
  const ghost = `INSERT INTO twophase_kv (key, value, present) VALUES ('ghost', '1', true)`
  await preparedElsewhere(url, 'elsewhere:2', ghost)
  try {
    for (const [txn, ops, reason] of [
      ['B', [{ op: 'add', key: 'k', amount: 1 }], 'key k is locked by prepared transaction'],
      ['C', insert('fresh', 2), 'key fresh is locked by prepared transaction elsewhere:1'],
      ['D', insert('ghost', 2), `a key of D is locked by another transaction (waited`],
    ] as const) {
      const reply = await unlessStalled(post(app, '/prepare', { txn, ops }))
      expect(reply).not.toBe('stalled')
      if (reply === 'stalled') continue
      expect(reply.body).toMatchObject({ txn, vote: 'no' })
      expect(reply.body.reason).toContain(reason)
      expect(reply.ms).toBeLessThan(txn === 'D' ? LOCK_TIMEOUT_MS + AT_ONCE_MS : AT_ONCE_MS)
    }
  } finally {
    for (const gid of ['elsewhere:1', 'elsewhere:2']) {
      await withSql(url, (db) => db.unsafe(`ROLLBACK PREPARED '${gid}'`))
    }
  }
  // Once the lock is gone the same work goes through.
  const again = await post(app, '/prepare', {
    txn: 'B2',
    ops: [{ op: 'add', key: 'k', amount: 1 }],
  })
  expect(again.body.vote).toBe('yes')
  await post(app, '/commit', { txn: 'B2' })
})

/** The server log's lines written since `offset` that report an error or a warning. */
function errorLines(offset: number): string[] {
  const text = readFileSync(pg.cluster().logFile, 'utf8').slice(offset)
  return text.split('\n').filter((line) => /\b(WARNING|ERROR|FATAL|PANIC):/.test(line))
}

test('conflicting transfers on PostgreSQL participants write no error in its log', async () => {
  const offset = statSync(pg.cluster().logFile).size
  const dbs = [await freshDatabase(), await freshDatabase(), await freshDatabase()]
  const nodes = []
  for (const db of dbs) nodes.push(await startParticipant(tempDir(), { args: ['--store', db] }))
  const coordinator = await startCoordinatorService(tempDir(), {
    participants: nodes.map((n) => n.url),
  })
  const bank = { coordinator: coordinator.url, participants: nodes.map((n) => n.url) }
  // Six accounts, sixteen transfers at a time: most meet a key another one holds.
  await openAccounts(bank, 6, 100)
  const plan = planTransfers(300, 6, mulberry32(16), { prefix: 'lk' })
  const outcomes = await runTransfers(bank, plan, { concurrency: 16 })
  await waitSettled(bank)
  expect(outcomes.filter((o) => o.decision === null)).toEqual([])
  const reasons = outcomes.flatMap((o) => Object.values(o.reasons ?? {}))
  expect(reasons.filter((r) => / is locked by /.test(String(r))).length).toBeGreaterThan(0)
  expect(outcomes.filter((o) => o.decision === 'commit').length).toBeGreaterThan(0)
  expect((await readBalances(bank, 6)).reduce((a, b) => a + b, 0)).toBe(600)
  expect(errorLines(offset)).toEqual([])
}, 60_000)

/** A SQLite store whose check of a transaction named `slow…` waits until `open()`. */
class GatedStore extends SqliteStore {
  readonly #gate = Promise.withResolvers<void>()
  open = () => this.#gate.resolve()
  override async check(txn: string, ops: readonly Op[], context?: PrepareContext) {
    if (txn.startsWith('slow')) await this.#gate.promise
    return super.check(txn, ops, context)
  }
}

async function gatedParticipant() {
  const dir = tempDir()
  const store = new GatedStore(dir)
  const node = new ParticipantNode(dir, null, { store })
  await node.start()
  stops.push(async () => {
    store.open()
    await node.close()
  })
  return { node, store, app: createApp(node) }
}

test('a batch answers the finished messages within the bound, the slow one later', async () => {
  const { app, store, node } = await gatedParticipant()
  const messages = [
    { type: 'prepare', txn: 'slow1', ops: set('s', 1) },
    { type: 'prepare', txn: 'fast1', ops: set('f', 1) },
    { type: 'abort', txn: 'gone1' },
  ]
  const first = await unlessStalled(post(app, '/batch', { messages }))
  if (first === 'stalled') throw new Error('the batch waited for its slow message')
  expect(first.ms).toBeLessThan(BATCH_WAIT_MS + AT_ONCE_MS)
  expect(first.body.replies).toEqual([
    { status: 503, body: { error: `still running after ${BATCH_WAIT_MS} ms: send it again` } },
    { status: 200, body: { txn: 'fast1', vote: 'yes', reason: null } },
    { status: 200, body: { txn: 'gone1', state: 'aborted' } },
  ])
  // The slow prepare keeps running; once it is done, a repeat gets its vote.
  store.open()
  const again = await post(app, '/batch', { messages: [messages[0]] })
  expect(again.body.replies).toEqual([
    { status: 200, body: { txn: 'slow1', vote: 'yes', reason: null } },
  ])
  expect(node.state('slow1').state).toBe('prepared')
})

test('the coordinator takes a still-running item as no answer yet, and asks again', async () => {
  const gated = await gatedParticipant()
  const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: gated.app.fetch })
  stops.push(() => server.stop(true))
  const url = `http://127.0.0.1:${server.port}`
  let stillRunning = 0
  // Opens the gate once the participant has answered "still running".
  const ports: Ports = {
    ...bunPorts,
    request: async (method, to, body, ms) => {
      const reply = await bunPorts.request(method, to, body, ms)
      const replies = (reply?.body as { replies?: { status: number }[] } | null)?.replies ?? []
      if (replies.some((r) => r.status === 503)) {
        stillRunning += 1
        gated.store.open()
      }
      return reply
    },
  }
  const coordinator = new CoordinatorNode({ dir: tempDir(), alwaysBatch: true, ports })
  await coordinator.start()
  stops.push(() => coordinator.close())
  const decided = await coordinator.run('slow2', [url], { [url]: set('s', 2) })
  expect(stillRunning).toBeGreaterThan(0)
  expect(decided.decision).toBe('commit')
  await coordinator.when('slow2', 'done')
  expect(await gated.node.store.get('s')).toBe(2)
})
