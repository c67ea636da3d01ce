// `sql` operations with authentication on: they come only from the cluster. A coordinator
// refuses a client token's transaction that carries them (403, nothing prepared anywhere), and
// relays one whose request proves the cluster secret.
import { afterEach, expect, test } from 'bun:test'
import { createApp } from '../lib/http/participant-app.ts'
import { createCoordinatorApp } from '../lib/http/coordinator-app.ts'
import { CoordinatorNode, ParticipantNode, httpPorts, requestHeaders } from '../lib.ts'
import { cleanup, tempDir } from '../testing/processes.ts'

const SECRET = 'a-cluster-secret-of-some-length'
const TOKEN = 'a-client-token-0123456789'
const stops: (() => unknown)[] = []
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop()
  await cleanup()
})

async function cluster() {
  const participant = new ParticipantNode(tempDir(), null, { ports: httpPorts({ secret: SECRET }) })
  await participant.start()
  const server = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    fetch: createApp(participant, { secret: SECRET }).fetch,
  })
  const node = new CoordinatorNode({ dir: tempDir(), ports: httpPorts({ secret: SECRET }) })
  await node.start()
  stops.push(
    () => server.stop(true),
    () => participant.close(),
    () => node.close(),
  )
  const participants = [`http://127.0.0.1:${server.port}`]
  const credentials = { secret: SECRET, clientTokens: [TOKEN] }
  const app = createCoordinatorApp(node, { participants, ackWaitMs: 1000, credentials })
  return { participant, app }
}

const SQL_OPS = [{ op: 'sql', text: 'UPDATE accounts SET balance = 0', params: [] }]

test("a client token's transaction with sql operations is a 403, prepared nowhere", async () => {
  const { participant, app } = await cluster()
  const body = JSON.stringify({ id: 'q1', ops: SQL_OPS })
  const refused = await app.request('/transactions', {
    method: 'POST',
    body,
    headers: { authorization: `Bearer ${TOKEN}` },
  })
  expect(refused.status).toBe(403)
  expect(((await refused.json()) as { error: string }).error).toContain('not a client token')
  expect(participant.state('q1').state).toBe('unknown')
  // The same token may still run operations on keys.
  const kv = JSON.stringify({ id: 'q2', ops: [{ op: 'set', key: 'k', value: 1 }] })
  const ok = await app.request('/transactions', {
    method: 'POST',
    body: kv,
    headers: { authorization: `Bearer ${TOKEN}` },
  })
  expect(((await ok.json()) as { decision: string }).decision).toBe('commit')
})

test('a request that proves the secret is relayed: the participant decides', async () => {
  const { app } = await cluster()
  const body = JSON.stringify({ id: 'q3', ops: SQL_OPS })
  const headers = requestHeaders('POST', 'http://localhost/transactions', body, SECRET)
  const answer = await app.request('/transactions', { method: 'POST', body, headers })
  expect(answer.status).toBe(200)
  // This participant was started without --allow-sql: its 400 makes the transaction abort.
  const outcome = (await answer.json()) as { decision: string; reasons: Record<string, string> }
  expect(outcome.decision).toBe('abort')
  expect(Object.values(outcome.reasons).join()).toContain('--allow-sql')
})
