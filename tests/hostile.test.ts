// Well-formed but hostile requests are refused and change nothing: a participant's HTTP app in
// process (`createApp(node).request()`), each test on a fresh directory.
import { afterEach, expect, test } from 'bun:test'
import type { Hono } from 'hono'
import { createApp } from '../lib/http/participant-app.ts'
import { createCoordinatorApp } from '../lib/http/coordinator-app.ts'
import { CoordinatorNode, ParticipantNode, SqliteStore } from '../lib.ts'
import { MAX_VALUE_DEPTH } from '../lib/core/ops.ts'
import { cleanup, outputOf, spawnCoordinator, tempDir, waitFor } from '../testing/processes.ts'
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

test('a repeated prepare with other operations is a 409, also after a restart', async () => {
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

test('values nested 30,000 deep are a prompt 400 that changes nothing', async () => {
  const p = await open()
  const deep = '['.repeat(30_000) + ']'.repeat(30_000)
  const ops = Array.from({ length: 16 }, (_, i) => `{"op":"set","key":"k${i}","value":${deep}}`)
  const body = `{"txn":"n1","ops":[${ops.join(',')}]}`
  expect(body.length).toBeLessThan(1024 * 1024)
  const refused = await post(p, '/prepare', body)
  expect(refused.status).toBe(400)
  expect(String(refused.body.error)).toContain('nested deeper than 64 levels')
  expect(p.node.state('n1').state).toBe('unknown')
})

test('a value too deep for the batch that would carry it is a 400 at the coordinator', async () => {
  // Nested 60 levels, the body passed the coordinator's limit of 64 but its batch to the
  // participant went one deeper: refused there every time, a one-phase transaction was retried
  // for ever. The deepest value allowed goes through, in a batch, and commits.
  const p = await open()
  const node = new CoordinatorNode({ dir: tempDir(), alwaysBatch: true, onePhase: true })
  await node.start()
  stops.push(() => node.close())
  const app = createCoordinatorApp(node, { participants: [await serve(p)], ackWaitMs: 10_000 })
  const nested = (levels: number): unknown => (levels === 1 ? 1 : { a: nested(levels - 1) })
  const begin = async (id: string, levels: number) => {
    const body = JSON.stringify({
      id,
      ops: { 0: [{ op: 'set', key: 'k', value: nested(levels) }] },
    })
    const answer = await app.request('/transactions', { method: 'POST', body })
    return { status: answer.status, body: (await answer.json()) as Record<string, unknown> }
  }
  const refused = await begin('deep1', MAX_VALUE_DEPTH + 4)
  expect(refused.status).toBe(400)
  expect(String(refused.body.error)).toContain(`nested deeper than ${MAX_VALUE_DEPTH} levels`)
  expect(node.txns.has('deep1')).toBe(false)
  const deepest = await begin('deep2', MAX_VALUE_DEPTH)
  expect(deepest.status).toBe(200)
  expect(deepest.body).toMatchObject({ decision: 'commit', acknowledged: true })
  expect(p.node.state('deep2').state).toBe('committed')
})

test.each([
  ['a key with a lone surrogate', { op: 'set', key: 'acct\ud800', value: 1 }, 'well-formed'],
  ['a value with a lone surrogate', { op: 'set', key: 'k', value: 'a\udc00' }, 'well-formed'],
  ['a value beyond 2^53', { op: 'set', key: 'k', value: 2 ** 53 + 2 }, 'not exact'],
  ['an amount beyond 2^53', { op: 'add', key: 'k', amount: 2 ** 60 }, 'not exact'],
])('%s is a 400 that changes nothing', async (_, op, words) => {
  const p = await open()
  const refused = await post(p, '/prepare', { txn: 'u1', ops: [op] })
  expect(refused.status).toBe(400)
  expect(String(refused.body.error)).toContain(words)
  expect(p.node.state('u1').state).toBe('unknown')
  expect(p.store.locks().size).toBe(0)
})

test('a number too large for a double (1e999) is a 400, not a null stored', async () => {
  const p = await open()
  const refused = await post(
    p,
    '/prepare',
    '{"txn":"u2","ops":[{"op":"set","key":"k","value":1e999}]}',
  )
  expect(refused.status).toBe(400)
  expect(String(refused.body.error)).toContain('not finite')
})

test('a sum that would leave the exact range votes no with the reason', async () => {
  const p = await open()
  const top = Number.MAX_SAFE_INTEGER - 1
  await post(p, '/prepare', { txn: 's1', ops: [{ op: 'set', key: 'k', value: top }] })
  await post(p, '/commit', { txn: 's1' })
  const voted = await post(p, '/prepare', { txn: 's2', ops: [{ op: 'add', key: 'k', amount: 10 }] })
  expect(voted.body).toEqual({ txn: 's2', vote: 'no', reason: 'add would take k out of range' })
  expect(await p.store.get('k')).toBe(top)
})

test('the coordinator refuses more operations for one participant than it may take', async () => {
  const node = new CoordinatorNode({ dir: tempDir() })
  await node.start()
  stops.push(() => node.close())
  const url = 'http://127.0.0.1:1'
  const app = createCoordinatorApp(node, { participants: [url], ackWaitMs: 0 })
  const thousand = Array.from({ length: 1000 }, (_, i) => ({ op: 'set', key: `k${i}`, value: i }))
  const body = JSON.stringify({ id: 'm1', ops: { 0: thousand, [url]: thousand } })
  const response = await app.request('/transactions', { method: 'POST', body })
  expect(response.status).toBe(400)
  expect(((await response.json()) as { error: string }).error).toContain('more than 1000')
  expect(node.txns.has('m1')).toBe(false)
})

test('a body that never finishes arriving gets a JSON 408', async () => {
  const p = await open()
  const port = Number(new URL(await serve(p)).port)
  const { promise: answered, resolve } = Promise.withResolvers<string>()
  let text = ''
  const socket = await Bun.connect({
    hostname: '127.0.0.1',
    port,
    socket: {
      data(_, chunk) {
        text += new TextDecoder().decode(chunk)
        if (text.includes('}')) resolve(text)
      },
      close: () => resolve(text),
    },
  })
  socket.write('POST /prepare HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n')
  socket.write('Content-Length: 100\r\n\r\n{"txn":"slow1"')
  const reply = await answered
  socket.end()
  expect(reply).toStartWith('HTTP/1.1 408')
  expect(reply).toContain('"error":"request body not received within 5000 ms"')
  expect(p.node.state('slow1').state).toBe('unknown')
}, 20_000)

/** A participant configured with whom it may ask in doubt (`--coordinator`, `--peer`). */
async function configured(coordinators: string[], peers: string[] = [], inDoubtAfterMs = 5000) {
  const dir = tempDir()
  const store = new SqliteStore(dir)
  const trusted = { coordinators, peers }
  const node = new ParticipantNode(dir, null, { store, trusted, inDoubtAfterMs, tickMs: 10 })
  nodes.add(node)
  await node.start()
  return { dir, node, app: createApp(node), store }
}

test('a prepare naming a coordinator not configured here is refused', async () => {
  const p = await configured(['http://127.0.0.1:8000'])
  const outsider = { txn: 'o1', coordinator: 'http://evil.example:80' }
  const refused = await post(p, '/prepare', outsider)
  expect(refused.status).toBe(400)
  expect(String(refused.body.error)).toContain('not one this participant is configured to ask')
  expect(p.node.state('o1').state).toBe('unknown')
})

test('peers a prepare names outside the configured ones are never asked', async () => {
  const peers = ['http://127.0.0.1:9001', 'http://127.0.0.1:9002']
  const p = await configured([], peers)
  const named = [...peers, ...Array.from({ length: 62 }, (_, i) => `http://10.9.9.${i}:1`)]
  expect((await post(p, '/prepare', { txn: 'o2', participants: named })).body.vote).toBe('yes')
  expect(p.node.state('o2').peers).toEqual(peers)
})

test('a prepare naming no coordinator is never asked about through a configured one', async () => {
  // A batch coordinator names none. The configured service, asked about a transaction it never
  // ran, would answer unknown (abort) while the batch coordinator may have committed it.
  const p = await configured(['http://127.0.0.1:8000'], [], 50)
  const body = { txn: 'o3', ops: [{ op: 'set', key: 'k', value: 1 }] }
  expect((await post(p, '/prepare', body)).body.vote).toBe('yes')
  expect(p.node.state('o3').coordinator).toBeNull()
  expect(p.store.records()[0]?.coordinator).toBeUndefined()
})

test('of the other coordinators a prepare names, only configured ones are kept', async () => {
  const mine = ['http://127.0.0.1:8000', 'http://127.0.0.1:8001'] as const
  const p = await configured([...mine])
  const coordinators = [mine[1], 'http://evil.example:80']
  const body = { txn: 'o4', coordinator: mine[0], coordinators }
  expect((await post(p, '/prepare', body)).body.vote).toBe('yes')
  expect(p.node.state('o4').coordinators).toEqual([mine[1]])
  expect(p.store.records()[0]?.coordinators).toEqual([mine[1]])
  const bad = await post(p, '/prepare', { txn: 'o5', coordinator: mine[0], coordinators: 'x' })
  expect(bad.status).toBe(400)
  expect(String(bad.body.error)).toContain('invalid "coordinators"')
  expect(p.node.state('o5').state).toBe('unknown')
})

test('the client exits 3 on a heuristic outcome and says so', async () => {
  const outcome = {
    id: 'h9',
    decision: 'commit',
    state: 'commit',
    votes: { 'http://p0': 'yes', 'http://p1': 'yes' },
    reasons: {},
    acknowledged: false,
    heuristic: true,
    refusals: { 'http://p1': 'Cannot commit transaction "h9" as it is already aborted' },
  }
  const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => Response.json(outcome) })
  stops.push(() => server.stop(true))
  const url = `http://127.0.0.1:${server.port}`
  const run = await outputOf(spawnCoordinator(tempDir(), ['show', 'h9', '--coordinator', url]))
  expect(run.code).toBe(3)
  expect(run.stdout).toContain('h9 commit (HEURISTIC: a participant refused it')
  expect(run.stdout).toContain('(refused the decision: Cannot commit transaction "h9"')
})

test('a lone participant that cannot be reached: a 202 after the prepare timeout', async () => {
  const dir = tempDir()
  const node = new CoordinatorNode({ dir, timeoutMs: 100, alwaysBatch: true, onePhase: true })
  await node.start()
  stops.push(() => node.close())
  const app = createCoordinatorApp(node, { participants: ['http://127.0.0.1:1'], ackWaitMs: 0 })
  const response = await app.request('/transactions', { method: 'POST', body: '{"id":"w1"}' })
  expect(response.status).toBe(202)
  expect(await response.json()).toMatchObject({ id: 'w1', decision: null, state: 'preparing' })
  expect(node.txns.get('w1')?.phase).toBe('preparing') // it is still asked: one phase
})
