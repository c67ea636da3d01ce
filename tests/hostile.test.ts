// Well-formed but hostile requests are refused and change nothing: a participant's HTTP app in
// process (`createApp(node).request()`), each test on a fresh directory.
import { afterEach, expect, test } from 'bun:test'
import type { Hono } from 'hono'
import { createApp } from '../lib/http/participant-app.ts'
import { ParticipantNode, SqliteStore } from '../lib.ts'
import { cleanup, tempDir } from '../testing/processes.ts'

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
