// Batched protocol messages: POST /batch on a participant, and the coordinator sharing requests
// and forced writes between concurrent transactions.
import { afterEach, expect, test } from 'bun:test'
import { createApp } from '../lib/http/participant-app.ts'
import { ParticipantNode } from '../lib.ts'
import {
  cleanup,
  getJson,
  postJson,
  startCoordinatorService,
  startParticipant,
  tempDir,
} from '../testing/processes.ts'

afterEach(cleanup)

async function batch(app: ReturnType<typeof createApp>, body: unknown) {
  const response = await app.request('/batch', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  return { status: response.status, body: (await response.json()) as any }
}

test('POST /batch answers each message as its own endpoint would, in order', async () => {
  const node = new ParticipantNode(tempDir(), null)
  await node.start()
  const app = createApp(node)
  const first = await batch(app, {
    messages: [
      { type: 'prepare', txn: 'b1', ops: [{ op: 'set', key: 'k', value: 1 }] },
      { type: 'prepare', txn: 'b2', ops: [{ op: 'set', key: 'k', value: 2 }] },
      { type: 'abort', txn: 'b3' },
      { type: 'commit', txn: 'never' },
      { type: 'prepare', txn: 'bad/id' },
      { type: 'frob', txn: 'b4' },
      { type: 'prepare', txn: 'b5', onePhase: 'yes' },
    ],
  })
  expect(first.status).toBe(200)
  expect(first.body.replies).toEqual([
    { status: 200, body: { txn: 'b1', vote: 'yes', reason: null } },
    { status: 200, body: { txn: 'b2', vote: 'no', reason: 'key k is locked by transaction b1' } },
    { status: 200, body: { txn: 'b3', state: 'aborted' } },
    {
      status: 409,
      body: {
        txn: 'never',
        error: 'Cannot commit transaction "never" as it was never prepared here',
      },
    },
    { status: 400, body: { error: expect.stringContaining('invalid "txn"') } },
    { status: 400, body: { error: 'invalid message type "frob"' } },
    { status: 400, body: { error: 'invalid "onePhase": expected true or false' } },
  ])
  const second = await batch(app, { messages: [{ type: 'commit', txn: 'b1' }] })
  expect(second.body.replies).toEqual([{ status: 200, body: { txn: 'b1', state: 'committed' } }])
  expect(await node.store.get('k')).toBe(1)
  for (const bad of [
    {},
    { messages: 'x' },
    { messages: Array(257).fill({ type: 'abort', txn: 'x' }) },
  ]) {
    expect((await batch(app, bad)).status).toBe(400)
  }
  await node.close()
})

test('concurrent transactions share HTTP requests and forced writes', async () => {
  const participants = await Promise.all([0, 1, 2].map(() => startParticipant(tempDir())))
  const coordinator = await startCoordinatorService(tempDir(), {
    participants: participants.map((p) => p.url),
  })
  const count = 300
  const replies = await Promise.all(
    Array.from({ length: count }, (_, i) =>
      postJson(`${coordinator.url}/transactions`, { id: `c${i}` }),
    ),
  )
  expect(replies.every((r) => r.body.decision === 'commit')).toBe(true)
  const sent = await getJson(`${coordinator.url}/metrics.json`)
  // One request per message would be 6 per transaction (3 prepares, 3 commits).
  expect(sent.requests).toBeLessThan(6 * count)
  expect(sent.flushes).toBeLessThan(2 * count) // begin and decision records share commits
  for (const p of participants) {
    const m = await getJson(`${p.url}/metrics.json`)
    expect(m.flushes).toBeLessThan(2 * count) // prepared and committed records share commits
    expect((await getJson(`${p.url}/transactions/c${count - 1}`)).state).toBe('committed')
  }
  console.log(
    `${count} concurrent transactions: ${sent.requests} requests, ` +
      `${sent.flushes} forced writes at the coordinator`,
  )
})
