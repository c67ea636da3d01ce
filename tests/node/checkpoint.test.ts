// Checkpoints: a node past --retain finished transactions folds the oldest into one record each,
// kept out of the live log that start-up reads. Folded or not, every transaction answers the
// same: its outcome, its vote, a 409 to the opposite decision, and a repeated id its outcome.
import { afterEach, expect, test } from 'bun:test'
import { Database } from 'bun:sqlite'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { CoordinatorNode, DurableLog, ParticipantNode, SqliteStore } from '../../lib.ts'
import { createCoordinatorApp } from '../../lib/http/coordinator-app.ts'
import { createApp } from '../../lib/http/participant-app.ts'
import { cleanup, tempDir } from '../../testing/processes.ts'

afterEach(cleanup)

const stops: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop()
})

type Rec = { txn: string; type: string }

test('a fold leaves the live log, keeps its place in the history, and is found', async () => {
  const path = join(tempDir(), 'log.db')
  const anchor = (r: Rec) => r.type === 'decision'
  const log = new DurableLog<Rec>(path, { anchor })
  for (const r of [
    { txn: 'a', type: 'begin' },
    { txn: 'b', type: 'begin' },
    { txn: 'a', type: 'decision' },
    { txn: 'b', type: 'decision' },
    { txn: 'a', type: 'done' },
  ])
    await log.append(r)
  log.fold('a', { txn: 'a', type: 'folded' })
  // Before the flush that writes it, the fold is answered from memory.
  expect(log.folded('a')).toEqual({ txn: 'a', type: 'folded' })
  log.close()

  const reopened = new DurableLog<Rec>(path, { anchor })
  expect(reopened.records()).toEqual([
    { txn: 'b', type: 'begin' },
    { txn: 'b', type: 'decision' },
  ])
  // At the place of a's decision: between b's begin and b's decision.
  expect([...reopened.history()].map((r) => `${r.txn} ${r.type}`)).toEqual([
    'b begin',
    'a folded',
    'b decision',
  ])
  expect(reopened.folded('a')).toEqual({ txn: 'a', type: 'folded' })
  expect(reopened.folded('b')).toBeUndefined()
  reopened.close()
})

test('a folded id is found however ids sort, before and after a restart', async () => {
  // An id past every folded one is not looked up: each fold moves that mark, a restart reads
  // it again, and an id that is not ASCII (where JavaScript and SQLite order strings apart) is
  // always looked up.
  const path = join(tempDir(), 'log.db')
  const ids = ['m', 'c', 'x', '\u{10000}', '\uE000']
  let log = new DurableLog<Rec>(path, { foldBatch: 1 })
  for (const txn of ids) await log.append({ txn, type: 'done' })
  const fold = async (txn: string) => {
    log.fold(txn, { txn, type: 'folded' })
    await log.append({ txn: 'other', type: 'begin' }) // rides the fold's flush
  }
  for (const txn of ['m', 'c', 'x']) {
    await fold(txn)
    expect(log.folded(txn)).toEqual({ txn, type: 'folded' })
  }
  expect(log.folded('z')).toBeUndefined()
  expect(log.folded('d')).toBeUndefined()
  for (const txn of ids.slice(3)) await fold(txn)
  log.close()

  log = new DurableLog<Rec>(path)
  for (const txn of ids) expect(log.folded(txn)).toEqual({ txn, type: 'folded' })
  expect(log.folded('y')).toBeUndefined()
  expect(log.folded('zz')).toBeUndefined()
  log.close()
})

type Outcome = { txn: string; type: string; decision?: string }
const outcomeOf = (r: Outcome) => (r.type === 'decision' ? r.decision! : null)

/** The outcomes `log` gives, as `txn=outcome` lines. */
function outcomeLines(log: DurableLog<Outcome>, inLogOrder = true): string[] {
  const lines: string[] = []
  log.outcomes((txn, outcome) => lines.push(`${txn}=${outcome}`), inLogOrder)
  return lines
}

test('outcomes: folded ones from their column, live ones parsed, in log order', async () => {
  const path = join(tempDir(), 'log.db')
  const options = { anchor: (r: Outcome) => r.type === 'decision', outcome: outcomeOf }
  const log = new DurableLog<Outcome>(path, { ...options, foldBatch: 2 })
  const decide = (txn: string, decision: string) => log.append({ txn, type: 'decision', decision })
  await log.append({ txn: 'z', type: 'begin' })
  await decide('z', 'commit')
  await decide('b', 'abort')
  await decide('m', 'commit')
  log.fold('z', { txn: 'z', type: 'decision', decision: 'commit' })
  log.fold('b', { txn: 'b', type: 'decision', decision: 'abort' })
  await log.append({ txn: 'z', type: 'done' }) // the flush that writes both folds
  expect(log.records().map((r) => r.txn)).toEqual(['m'])
  // The folded rows carry the outcome itself: a view of them parses nothing.
  const column = log.db.query('SELECT txn, outcome FROM folded ORDER BY seq').values()
  expect(column).toEqual([
    ['z', 'commit'],
    ['b', 'abort'],
  ])
  expect(outcomeLines(log)).toEqual(['z=commit', 'b=abort', 'm=commit'])
  // In any order: the folded ones first, by id, then the live ones.
  expect(outcomeLines(log, false)).toEqual(['b=abort', 'z=commit', 'm=commit'])
  log.close()
})

test('outcomes: a log folded before that column gets it, and its rows are parsed', async () => {
  const path = join(tempDir(), 'log.db')
  const old = new Database(path)
  old.run('CREATE TABLE log (seq INTEGER PRIMARY KEY, record TEXT NOT NULL)')
  old.run(
    'CREATE TABLE folded (txn TEXT PRIMARY KEY, seq INTEGER NOT NULL, record TEXT NOT NULL) ' +
      'WITHOUT ROWID',
  )
  const folded = { txn: 'a', type: 'decision', decision: 'abort' }
  old.query('INSERT INTO folded VALUES (?, ?, ?)').run('a', 2, JSON.stringify(folded))
  const live = { txn: 'c', type: 'decision', decision: 'commit' }
  old.query('INSERT INTO log VALUES (?, ?)').run(1, JSON.stringify(live))
  old.close()
  const log = new DurableLog<Outcome>(path, { outcome: outcomeOf })
  expect(outcomeLines(log)).toEqual(['c=commit', 'a=abort'])
  expect(log.folded('a')).toEqual(folded)
  log.close()
})

test('a fold whose write fails waits for the next flush; the records stay until then', async () => {
  const path = join(tempDir(), 'log.db')
  const log = new DurableLog<Rec>(path, { lazyMs: 0, foldBatch: 1 })
  await log.append({ txn: 'a', type: 'decision' })
  log.db.run('PRAGMA query_only = ON') // the disk refuses every write
  log.fold('a', { txn: 'a', type: 'folded' })
  await expect(log.append({ txn: 'b', type: 'decision' })).rejects.toThrow()
  expect(log.records()).toEqual([{ txn: 'a', type: 'decision' }])
  expect(log.folded('a')).toEqual({ txn: 'a', type: 'folded' })
  log.db.run('PRAGMA query_only = OFF')
  await log.append({ txn: 'c', type: 'decision' })
  expect(log.records()).toEqual([{ txn: 'c', type: 'decision' }])
  expect(log.folded('a')).toEqual({ txn: 'a', type: 'folded' })
  log.close()
})

type Participant = Awaited<ReturnType<typeof participant>>

async function participant(dir = tempDir(), retain = 1) {
  const node = new ParticipantNode(dir, null, { retain })
  await node.start()
  const app = createApp(node)
  let stopped = false
  const stop = async () => {
    if (!stopped) await node.close()
    stopped = true
  }
  stops.push(stop)
  return { dir, node, app, stop, store: node.store as SqliteStore }
}

async function send(p: Participant, path: string, body: object) {
  const headers = { accept: 'application/json', 'content-type': 'application/json' }
  const init = { method: 'POST', body: JSON.stringify(body), headers }
  const response = await p.app.request(path, init)
  return { status: response.status, body: (await response.json()) as Record<string, unknown> }
}

const setK = (value: number) => [{ op: 'set', key: `k${value}`, value }]

test('a participant answers a folded transaction as before, and after a restart', async () => {
  const p = await participant()
  for (const n of [1, 2, 3]) {
    expect((await send(p, '/prepare', { txn: `t${n}`, ops: setK(n) })).body.vote).toBe('yes')
    expect((await send(p, '/commit', { txn: `t${n}` })).body.state).toBe('committed')
  }
  expect((await send(p, '/abort', { txn: 'x' })).body.state).toBe('aborted') // never seen
  await send(p, '/prepare', { txn: 't4', ops: setK(4) })
  await send(p, '/commit', { txn: 't4' })
  // Memory keeps the last finished one (and nothing else).
  expect([...p.node.txns.keys()]).toEqual(['t4'])
  await expectFoldedAnswers(p)

  await p.stop() // writes the folds still pending
  const again = await participant(p.dir)
  expect(again.store.records().map((r) => `${r.txn} ${r.state}`)).toEqual([
    't4 prepared',
    't4 committed',
  ])
  await expectFoldedAnswers(again)
  expect(readFileSync(join(p.dir, 'state.txt'), 'utf8')).toBe(
    't1=committed\nt2=committed\nt3=committed\nt4=committed\nx=aborted\n',
  )
})

async function expectFoldedAnswers(p: Participant): Promise<void> {
  expect(p.node.state('t1').state).toBe('committed')
  expect((await send(p, '/commit', { txn: 't1' })).status).toBe(200)
  expect((await send(p, '/abort', { txn: 't1' })).status).toBe(409)
  expect((await send(p, '/prepare', { txn: 't1', ops: setK(1) })).body.vote).toBe('yes')
  expect((await send(p, '/prepare', { txn: 't1', ops: setK(9) })).status).toBe(409)
  // Aborted without a prepare: a late prepare votes no.
  expect((await send(p, '/prepare', { txn: 'x', ops: setK(5) })).body.vote).toBe('no')
  expect(await p.store.get('k1')).toBe(1)
  expect(await p.store.get('k5')).toBeUndefined()
}

test('a coordinator answers a folded transaction, and a repeated id runs nothing', async () => {
  const parts = [await participant(tempDir(), 10), await participant(tempDir(), 10)]
  const servers = parts.map((p) =>
    Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: p.app.fetch }),
  )
  stops.push(() => servers.forEach((s) => s.stop(true)))
  const participants = servers.map((s) => `http://127.0.0.1:${s.port}`)
  const dir = tempDir()
  const open = async () => {
    const node = new CoordinatorNode({ dir, retain: 1, alwaysBatch: true, lazyAborts: true })
    await node.start()
    return { node, app: createCoordinatorApp(node, { participants, ackWaitMs: 10_000 }) }
  }
  let { node, app } = await open()
  const post = async (id: string) => {
    const body = JSON.stringify({ id, ops: [{ op: 'add', key: 'n', amount: 1 }] })
    const response = await app.request('/transactions', { method: 'POST', body })
    return (await response.json()) as Record<string, unknown>
  }
  for (const id of ['c1', 'c2', 'c3']) expect((await post(id)).decision).toBe('commit')
  expect(node.txns.has('c1')).toBe(false)
  const check = async () => {
    const asked = (await (await app.request('/transactions/c1')).json()) as { state: string }
    expect(asked.state).toBe('commit')
    expect((await post('c1')).decision).toBe('commit') // its outcome, not a second run
    for (const p of parts) expect(await p.store.get('n')).toBe(3)
  }
  await check()
  node.close()
  ;({ node, app } = await open())
  stops.push(() => node.close())
  await check()
  expect(node.log.records().some((r) => r.txn === 'c1')).toBe(false)
  expect(readFileSync(join(dir, 'decision.txt'), 'utf8')).toBe('c1=commit\nc2=commit\nc3=commit\n')
})

test('ids a request names none for sort in the order they were assigned', async () => {
  const p = await participant(tempDir(), 10)
  const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: p.app.fetch })
  stops.push(() => server.stop(true))
  const node = new CoordinatorNode({ dir: tempDir(), alwaysBatch: true })
  await node.start()
  stops.push(() => node.close())
  const participants = [`http://127.0.0.1:${server.port}`]
  const app = createCoordinatorApp(node, { participants, ackWaitMs: 10_000 })
  const ids: string[] = []
  for (let i = 0; i < 50; i++) {
    const response = await app.request('/transactions', { method: 'POST', body: '{}' })
    ids.push(((await response.json()) as { id: string }).id)
  }
  // Version 7 UUIDs: each one past the last, so they join the end of every id-keyed table.
  for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab]/)
  expect(ids.toSorted()).toEqual(ids)
  expect(new Set(ids).size).toBe(ids.length)
})
