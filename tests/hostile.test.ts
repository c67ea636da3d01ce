// Well-formed but hostile requests are refused and change nothing: a participant's HTTP app in
// process (`createApp(node).request()`), each test on a fresh directory.
import { afterEach, expect, test } from 'bun:test'
import type { Hono } from 'hono'
import { createApp } from '../lib/http/participant-app.ts'
import { createCoordinatorApp } from '../lib/http/coordinator-app.ts'
import { CoordinatorNode, ParticipantNode, SqliteStore } from '../lib.ts'
import { cleanup, tempDir, waitFor } from '../testing/processes.ts'
import { FaultProxy, stopProxies } from '../testing/proxy.ts'

const nodes = new Set<ParticipantNode>()
afterEach(async () => {
  for (const node of nodes) await node.close()
  nodes.clear()
  await cleanup()
})

type Participant = { dir: string; node: ParticipantNode; app: Hono; store: SqliteStore }

async function open(dir = tempDir()): Promise<Participant> {
  const store = new SqliteStore(dir)
  const node = new ParticipantNode(dir, null, { store })
  nodes.add(node)
  await node.start()
  return { dir, node, app: createApp(node), store }
}

async function post(p: Participant, path: string, body: unknown) {
  const response = await p.app.request(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
  return { status: response.status, body: (await response.json()) as Record<string, unknown> }
}

const hugeSet = [{ op: 'set', key: 'balance', value: 1_000_000 }]
const transfer = [{ op: 'add', key: 'balance', amount: -10, min: 0 }]

test('a repeated prepare with other operations is refused (409), also after a restart', async () => {
  const p = await open()
  // An outsider prepares v4 first, with its own operations…
  expect((await post(p, '/prepare', { txn: 'v4', ops: hugeSet })).body.vote).toBe('yes')
  // …then the coordinator's prepare of v4 must not be answered with that yes.
  const refused = await post(p, '/prepare', { txn: 'v4', ops: transfer })
  expect(refused.status).toBe(409)
  expect(String(refused.body.error)).toContain('other operations')
  expect((await post(p, '/prepare', { txn: 'v4', ops: hugeSet })).body.vote).toBe('yes')
  await p.node.close()
  nodes.delete(p.node)
  const again = await open(p.dir)
  expect((await post(again, '/prepare', { txn: 'v4', ops: transfer })).status).toBe(409)
  expect(again.node.state('v4').state).toBe('prepared')
})

test('a participant prepared in batch mode keeps the peers it may ask in doubt', async () => {
  const p = await open()
  const peers = ['http://127.0.0.1:1', 'http://127.0.0.1:2']
  expect((await post(p, '/prepare', { txn: 't1', participants: peers })).body.vote).toBe('yes')
  expect(p.node.state('t1').peers).toEqual(peers)
  const [record] = p.store.records()
  expect(record?.peers).toEqual(peers)
})

/** A participant served on a free loopback port, stopped after the test. */
async function serve(p: Participant): Promise<string> {
  const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: p.app.fetch })
  stops.push(() => server.stop(true))
  return `http://127.0.0.1:${server.port}`
}

const stops: (() => void)[] = []
afterEach(() => {
  for (const stop of stops.splice(0)) stop()
  stopProxies()
})

test('a commit a participant refused is reported as heuristic, never as acknowledged', async () => {
  const [p0, p1] = [await open(), await open()]
  const proxy = new FaultProxy(await serve(p1))
  proxy.set('drop', '/commit') // p1's commit is held while an operator resolves it
  const participants = [await serve(p0), proxy.url]
  const node = new CoordinatorNode({ dir: tempDir(), alwaysBatch: true, lazyAborts: true })
  await node.start()
  stops.push(() => node.close())
  const app = createCoordinatorApp(node, { participants, ackWaitMs: 10_000 })
  const posted = Promise.resolve(
    app.request('/transactions', { method: 'POST', body: '{"id":"h1"}' }),
  ).then((r) => r.json() as Promise<Record<string, unknown>>)
  await waitFor(() => (proxy.seen.get('/commit') ?? 0) > 0)
  const resolved = await p1.node.handle({ type: 'resolve', txn: 'h1', decision: 'abort' })
  expect(resolved).toEqual({ kind: 'outcome', txn: 'h1', state: 'aborted' })
  proxy.heal()
  const outcome = await posted
  expect(outcome.decision).toBe('commit')
  expect(outcome.acknowledged).toBe(false)
  expect(outcome.heuristic).toBe(true)
  expect(Object.keys(outcome.refusals as object)).toEqual([proxy.url])
  const status = (await (await app.request('/status')).json()) as { heuristic: unknown[] }
  expect(status.heuristic).toEqual([{ id: 'h1', decision: 'commit', refusals: outcome.refusals }])
})

test('an abort sent once and refused (the participant committed) is recorded', async () => {
  const p0 = await open()
  // p0 prepared h2 and an operator committed it there; the coordinator never hears p0's vote
  // (its prepare is held), times h2 out and aborts it: p0 refuses the abort.
  expect((await post(p0, '/prepare', { txn: 'h2' })).body.vote).toBe('yes')
  await p0.node.handle({ type: 'resolve', txn: 'h2', decision: 'commit' })
  const proxy = new FaultProxy(await serve(p0))
  proxy.set('drop', '/prepare')
  const dir = tempDir()
  const node = new CoordinatorNode({ dir, timeoutMs: 100, alwaysBatch: true, lazyAborts: true })
  await node.start()
  stops.push(() => node.close())
  const app = createCoordinatorApp(node, { participants: [proxy.url], ackWaitMs: 0 })
  const posted = await app.request('/transactions', { method: 'POST', body: '{"id":"h2"}' })
  expect(((await posted.json()) as { decision: string }).decision).toBe('abort')
  await waitFor(() => Object.keys(node.txns.get('h2')?.refusals ?? {}).length > 0)
  const seen = (await (await app.request('/transactions/h2')).json()) as Record<string, unknown>
  expect(seen.decision).toBe('abort')
  expect(seen.heuristic).toBe(true)
  expect(seen.acknowledged).toBe(false)
})
