// Authenticated nodes, in process: with a cluster secret every request but GET /healthz must
// prove it (HMAC over method, path, time, nonce and body, once); client tokens open only the
// coordinator's API. Refused requests are 401 and change nothing.
import { afterEach, expect, test } from 'bun:test'
import type { Hono } from 'hono'
import { createApp } from '../lib/http/participant-app.ts'
import { createCoordinatorApp } from '../lib/http/coordinator-app.ts'
import { CoordinatorNode, ParticipantNode, httpPorts, requestHeaders } from '../lib.ts'
import { proofOf } from '../lib/wire/auth.ts'
import { cleanup, tempDir, waitFor } from '../testing/processes.ts'

const SECRET = 'a-cluster-secret-of-some-length'
const ABORT_A2 = { method: 'POST', path: '/abort', body: '{"txn":"a2"}' }
const TOKEN = 'a-client-token-0123456789'
const credentials = { secret: SECRET, clientTokens: [TOKEN] }

const stops: (() => unknown)[] = []
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop()
  await cleanup()
})

async function participant(secret = SECRET) {
  const node = new ParticipantNode(tempDir(), null, { ports: httpPorts({ secret }) })
  await node.start()
  const app = createApp(node, { secret })
  const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: app.fetch })
  stops.push(
    () => server.stop(true),
    () => node.close(),
  )
  return { node, app, url: `http://127.0.0.1:${server.port}` }
}

function send(app: Hono, path: string, body: unknown, headers: Record<string, string> = {}) {
  const text = body === null ? undefined : JSON.stringify(body)
  const method = text === undefined ? 'GET' : 'POST'
  return app.request(path, { method, body: text, headers })
}

/** Headers proving `secret` for a request of `body` to `path`. */
function signed(path: string, body: unknown, secret = SECRET) {
  const text = body === null ? '' : JSON.stringify(body)
  return requestHeaders(body === null ? 'GET' : 'POST', `http://localhost${path}`, text, secret)
}

test('without proof a request is a 401 that changes nothing; /healthz stays open', async () => {
  const p = await participant()
  const refused = await send(p.app, '/prepare', { txn: 'a1' })
  expect(refused.status).toBe(401)
  expect(((await refused.json()) as { error: string }).error).toStartWith('unauthorized: no proof')
  expect(p.node.state('a1').state).toBe('unknown')
  expect((await send(p.app, '/transactions/a1', null)).status).toBe(401)
  expect((await send(p.app, '/healthz', null)).status).toBe(200)
  const ok = await send(p.app, '/prepare', { txn: 'a1' }, signed('/prepare', { txn: 'a1' }))
  expect(((await ok.json()) as { vote: string }).vote).toBe('yes')
})

test.each([
  ['a wrong secret', () => signed('/abort', { txn: 'a2' }, 'another-secret-entirely'), 'match'],
  ['a proof for another body', () => signed('/abort', { txn: 'zz' }), 'match'],
  ['a proof for another path', () => signed('/commit', { txn: 'a2' }), 'match'],
  [
    'a proof from long ago',
    () => ({
      authorization: proofOf(SECRET, ABORT_A2, 1),
    }),
    'too old',
  ],
])('%s is refused', async (_, headers, words) => {
  const p = await participant()
  const refused = await send(p.app, '/abort', { txn: 'a2' }, headers())
  expect(refused.status).toBe(401)
  expect(((await refused.json()) as { error: string }).error).toContain(words)
  expect(p.node.state('a2').state).toBe('unknown')
})

test('a proof is accepted once: its replay is refused', async () => {
  const p = await participant()
  const headers = signed('/abort', { txn: 'a3' })
  expect((await send(p.app, '/abort', { txn: 'a3' }, headers)).status).toBe(200)
  const replay = await send(p.app, '/abort', { txn: 'a3' }, headers)
  expect(replay.status).toBe(401)
  expect(((await replay.json()) as { error: string }).error).toContain('replay')
})

test('a client token opens the coordinator API, never a participant', async () => {
  const p = await participant()
  const bearer = { authorization: `Bearer ${TOKEN}` }
  expect((await send(p.app, '/abort', { txn: 'a4' }, bearer)).status).toBe(401)
  const node = new CoordinatorNode({ dir: tempDir(), ports: httpPorts({ secret: SECRET }) })
  await node.start()
  stops.push(() => node.close())
  const app = createCoordinatorApp(node, { participants: [p.url], ackWaitMs: 1000, credentials })
  const posted = await send(app, '/transactions', { id: 'a4' }, bearer)
  expect(((await posted.json()) as { decision: string }).decision).toBe('commit')
  expect(p.node.state('a4').state).toBe('committed') // the coordinator's own requests proved it
  expect((await send(app, '/transactions', { id: 'a5' })).status).toBe(401)
  expect(
    (await send(app, '/transactions', { id: 'a5' }, { authorization: 'Bearer nope' })).status,
  ).toBe(401)
})

test("an outsider's /abort during a transfer is a 401: the transfer stays atomic", async () => {
  const [p0, p1] = [await participant(), await participant()]
  const node = new CoordinatorNode({
    dir: tempDir(),
    ports: httpPorts({ secret: SECRET }),
    alwaysBatch: true,
    lazyAborts: true,
  })
  await node.start()
  stops.push(() => node.close())
  const participants = [p0.url, p1.url]
  const app = createCoordinatorApp(node, { participants, ackWaitMs: 5000, credentials })
  const ops = {
    0: [{ op: 'add', key: 'acct:0', amount: -10 }],
    1: [{ op: 'add', key: 'acct:1', amount: 10 }],
  }
  const bearer = { authorization: `Bearer ${TOKEN}` }
  const posted = send(app, '/transactions', { id: 'x1', ops }, bearer)
  await waitFor(() => p1.node.state('x1').state !== 'unknown')
  // The outsider, who knows the transaction id but not the secret, tries to abort one side.
  const outsider = await fetch(`${p1.url}/abort`, { method: 'POST', body: '{"txn":"x1"}' })
  expect(outsider.status).toBe(401)
  const outcome = (await (await posted).json()) as { decision: string; acknowledged: boolean }
  expect(outcome).toMatchObject({ decision: 'commit', acknowledged: true })
  expect(await p0.node.store.get('acct:0')).toBe(-10)
  expect(await p1.node.store.get('acct:1')).toBe(10)
})

test('a proof made before the node started is refused: a restart reopens no replay', async () => {
  const header = { authorization: proofOf(SECRET, ABORT_A2, Date.now() - 1000) }
  const p = await participant() // started after the proof was made, as after a restart
  const refused = await send(p.app, '/abort', { txn: 'a2' }, header)
  expect(refused.status).toBe(401)
  expect(((await refused.json()) as { error: string }).error).toContain('before this node started')
})
