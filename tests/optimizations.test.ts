// The classic optimizations, seen from outside: a read-only participant writes nothing and is
// left out of phase two; under presumed abort an abort is sent once and never acknowledged.
import { afterEach, expect, test } from 'bun:test'
import { FaultProxy, stopProxies } from '../testing/proxy.ts'
import {
  cleanup,
  getJson,
  postJson,
  startCoordinatorService,
  startParticipant,
  tempDir,
  waitFor,
  type Node,
} from '../testing/processes.ts'

afterEach(async () => {
  stopProxies()
  await cleanup()
})

/** Two participants, the second behind a proxy that counts what reaches it. */
async function cluster(
  readerArgs: string[] = [],
): Promise<{ writer: Node; reader: Node; proxy: FaultProxy; c: Node }> {
  const writer = await startParticipant(tempDir())
  const reader = await startParticipant(tempDir(), { args: readerArgs })
  const proxy = new FaultProxy(reader.url)
  const c = await startCoordinatorService(tempDir(), { participants: [writer.url, proxy.url] })
  return { writer, reader, proxy, c }
}

const flushesOf = async (n: Node): Promise<number> =>
  (await getJson(`${n.url}/metrics.json`)).flushes

test('a participant that only reads votes read-only, writes nothing, hears no commit', async () => {
  const { writer, reader, proxy, c } = await cluster()
  const seeded = await postJson(`${c.url}/transactions`, {
    id: 'seed',
    ops: { 1: [{ op: 'set', key: 'limit', value: 100 }] },
  })
  expect(seeded.body.decision).toBe('commit')
  const before = await flushesOf(reader)

  const reply = await postJson(`${c.url}/transactions`, {
    id: 'r1',
    ops: {
      0: [{ op: 'set', key: 'order', value: 7 }],
      1: [{ op: 'check', key: 'limit', equals: 100 }],
    },
  })
  expect(reply.body.decision).toBe('commit')
  expect(reply.body.votes).toEqual({ [writer.url]: 'yes', [proxy.url]: 'read-only' })
  expect(reply.body.acknowledged).toBe(true)
  expect((await getJson(`${writer.url}/kv/order`)).value).toBe(7)
  // Nothing of r1 is on the reader's disk or in its memory, and no decision was sent to it.
  expect(await flushesOf(reader)).toBe(before)
  expect((await getJson(`${reader.url}/transactions/r1`)).state).toBe('unknown')
  expect(proxy.seen.get('/commit')).toBeUndefined() // (seed ran in one phase)
  expect((await getJson(`${reader.url}/status`)).locks).toEqual({})
})

test('a read-only check that fails votes no and the transaction aborts', async () => {
  const { writer, proxy, c } = await cluster()
  const reply = await postJson(`${c.url}/transactions`, {
    id: 'r2',
    ops: {
      0: [{ op: 'set', key: 'order', value: 8 }],
      1: [{ op: 'check', key: 'limit', equals: 100 }],
    },
  })
  expect(reply.body.decision).toBe('abort')
  expect(reply.body.votes[proxy.url]).toBe('no')
  // The abort reaches the writer just after the client hears the decision.
  await waitFor(async () => (await getJson(`${writer.url}/transactions/r2`)).state === 'aborted')
  expect((await getJson(`${writer.url}/kv/order`)).error).toBeDefined()
})

test('presumed abort: the abort is sent once, never retried; the transaction is done', async () => {
  const { writer, reader, proxy, c } = await cluster(['--in-doubt-after', '300'])
  proxy.set('refuse', '/abort') // the abort to the reader fails
  const reply = await postJson(`${c.url}/transactions`, {
    id: 'a1',
    ops: {
      0: [{ op: 'add', key: 'n', amount: -1, min: 0 }], // absent counts as 0: votes no
      1: [{ op: 'set', key: 'x', value: 1 }],
    },
  })
  expect(reply.body.decision).toBe('abort')
  expect(reply.body.votes[writer.url]).toBe('no')
  // The first `no` decides, so the reader's `yes` may arrive too late to be counted.
  expect(['yes', null]).toContain(reply.body.votes[proxy.url])
  expect(reply.body.acknowledged).toBe(false)
  await waitFor(async () => (await getJson(`${c.url}/transactions/a1`)).state === 'abort')
  expect((await getJson(`${c.url}/transactions/a1`)).phase).toBe('done')
  expect((await getJson(`${c.url}/status`)).counts.delivering).toBe(0)
  expect(proxy.seen.get('/abort')).toBe(1)
  // The reader was left prepared; in doubt it asks the coordinator, which says abort.
  await waitFor(async () => (await getJson(`${reader.url}/transactions/a1`)).state === 'aborted')
  expect(proxy.seen.get('/abort')).toBe(1)
})

test('one participant: one phase, one message, its outcome is the decision', async () => {
  const { writer, proxy, c } = await cluster()
  const before = { coordinator: await flushesOf(c), writer: await flushesOf(writer) }
  const reply = await postJson(`${c.url}/transactions`, {
    id: 'o1',
    ops: { 1: [{ op: 'add', key: 'n', amount: 3 }] },
  })
  expect(reply.body).toMatchObject({
    decision: 'commit',
    votes: { [proxy.url]: 'yes' },
    acknowledged: true,
  })
  // A prepare and nothing else reached it; the begin record was its coordinator's forced write.
  expect(proxy.seen.get('/prepare')).toBe(1)
  expect(proxy.seen.get('/commit')).toBeUndefined()
  expect(await flushesOf(c)).toBe(before.coordinator + 1)
  expect(await flushesOf(writer)).toBe(before.writer) // not involved
  const stored = await getJson(`${c.url}/transactions/o1`)
  expect(stored).toMatchObject({ state: 'commit', phase: 'done' })
  const reader = await getJson(`${proxy.target}/transactions/o1`)
  expect(reader.state).toBe('committed')
  expect((await getJson(`${proxy.target}/kv/n`)).value).toBe(3)

  // A repeated id answers the recorded outcome and runs nothing again.
  const again = await postJson(`${c.url}/transactions`, {
    id: 'o1',
    ops: { 1: [{ op: 'add', key: 'n', amount: 3 }] },
  })
  expect(again.body.decision).toBe('commit')
  expect((await getJson(`${proxy.target}/kv/n`)).value).toBe(3)
})

test('one participant that refuses: the transaction aborts and nothing is applied', async () => {
  const { proxy, c } = await cluster()
  const reply = await postJson(`${c.url}/transactions`, {
    id: 'o2',
    ops: { 1: [{ op: 'add', key: 'n', amount: -3, min: 0 }] },
  })
  expect(reply.body.decision).toBe('abort')
  expect(reply.body.votes[proxy.url]).toBe('no')
  expect((await getJson(`${proxy.target}/transactions/o2`)).state).toBe('aborted')
})
