// The coordinator service in-process: what it tells others is only what is on its disk.
import { afterEach, expect, test } from 'bun:test'
import { CoordinatorNode, type CoordinatorRecord } from '../lib.ts'
import { createCoordinatorApp } from '../lib/http/coordinator-app.ts'
import { httpPorts, type Ports } from '../lib/node/ports.ts'
import { cleanup, tempDir, waitFor } from '../testing/processes.ts'

afterEach(cleanup)

// A presumed abort too: its record is lazy, but nobody hears of it before it is on disk either.
test.each([
  ['a commit', 'commit'],
  ['an abort', 'abort'],
] as const)(
  '%s still waiting for its flush is answered as preparing, then as decided',
  async (_, decision) => {
    // A participant that votes (yes for a commit, no for an abort) and acknowledges everything.
    const participant = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      async fetch(request) {
        if (request.method !== 'POST') return new Response(null, { status: 404 }) // no channels
        const { messages } = (await request.json()) as { messages: { type: string; txn: string }[] }
        const replies = messages.map((m) => ({
          status: 200,
          body:
            m.type === 'prepare'
              ? { txn: m.txn, vote: decision === 'commit' ? 'yes' : 'no' }
              : { txn: m.txn, state: 'committed' },
        }))
        return Response.json({ replies })
      },
    })
    const node = new CoordinatorNode({ dir: tempDir(), alwaysBatch: true, lazyAborts: true })
    // A slow disk for d1 alone: its decision record's flush waits until the test lets it go.
    const { promise: flushed, resolve: flush } = Promise.withResolvers<void>()
    const append = node.log.append.bind(node.log)
    node.log.append = async (record: CoordinatorRecord, effect: undefined, lazy: boolean) => {
      if (record.type === 'decision' && record.txn === 'd1') await flushed
      return append(record, effect, lazy)
    }
    await node.start()
    const url = `http://127.0.0.1:${participant.port}`
    const app = createCoordinatorApp(node, { participants: [url], ackWaitMs: 1000 })
    const answer = async () =>
      ((await (await app.request('/transactions/d1')).json()) as { state: string }).state
    const posted = app.request('/transactions', { method: 'POST', body: '{"id":"d1"}' })
    await waitFor(() => node.txns.get('d1')?.decision === decision)
    expect(await answer()).toBe('preparing') // decided in memory, not yet on disk
    let told = false
    void Promise.resolve(posted).then(() => (told = true))
    // Meanwhile d2, whose disk is not held, runs all the way to its answer: a client of d1
    // told at the decision in memory would have heard before d2's client, decided later.
    const other = await app.request('/transactions', { method: 'POST', body: '{"id":"d2"}' })
    expect(((await other.json()) as { decision: string }).decision).toBe(decision)
    expect(told).toBe(false) // nor is the client told
    flush()
    expect(((await (await posted).json()) as { decision: string }).decision).toBe(decision)
    expect(await answer()).toBe(decision)
    await node.flushView()
    node.close()
    participant.stop(true)
  },
)

test('a transaction answered leaves no timer of its wait running', async () => {
  // Two participants that vote yes and acknowledge everything (plain requests: no channels).
  const participants = [0, 1].map(() =>
    Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      async fetch(request) {
        if (request.method !== 'POST') return new Response(null, { status: 404 })
        const { messages } = (await request.json()) as { messages: { type: string; txn: string }[] }
        const replies = messages.map((m) => ({
          status: 200,
          body: m.type === 'prepare' ? { vote: 'yes' } : { state: 'committed' },
        }))
        return Response.json({ replies })
      },
    }),
  )
  // Every timer of the acknowledgement wait (its length is this test's own), running or not.
  const ACK_WAIT_MS = 4321
  const running = new Set<object>()
  const real = httpPorts()
  const ports: Ports = {
    ...real,
    every(ms, fn) {
      if (ms !== ACK_WAIT_MS) return real.every(ms, fn)
      const timer = {}
      running.add(timer)
      const stop = real.every(ms, fn)
      return () => void (running.delete(timer), stop())
    },
    sleep(ms) {
      if (ms !== ACK_WAIT_MS) return real.sleep(ms)
      const timer = {}
      running.add(timer)
      return real.sleep(ms).finally(() => running.delete(timer))
    },
  }
  const node = new CoordinatorNode({ dir: tempDir(), alwaysBatch: true, lazyAborts: true, ports })
  await node.start()
  const urls = participants.map((p) => `http://127.0.0.1:${p.port}`)
  const app = createCoordinatorApp(node, { participants: urls, ackWaitMs: ACK_WAIT_MS })
  for (let i = 0; i < 5; i++) {
    const answer = await app.request('/transactions', { method: 'POST', body: '{}' })
    expect(await answer.json()).toMatchObject({ decision: 'commit', acknowledged: true })
  }
  // Each waited for its acknowledgements, which came first: its timer went with its answer.
  expect(running.size).toBe(0)
  await node.close()
  for (const p of participants) p.stop(true)
})
