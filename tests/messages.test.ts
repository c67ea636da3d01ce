// How the coordinator's messages reach a participant (MessageSender): what it hands back to the
// core when a batch is answered.
import { afterEach, expect, spyOn, test } from 'bun:test'
import { MessageSender, type CoordinatorEvent } from '../lib.ts'

let server: ReturnType<typeof Bun.serve> | null = null
afterEach(() => {
  server?.stop(true)
  server = null
})

/** A participant that votes yes to every prepare of every batch. */
function yesVoter(): string {
  server = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    async fetch(req) {
      if (req.method !== 'POST') return new Response(null, { status: 404 }) // no channels
      const { messages } = (await req.json()) as { messages: { txn: string }[] }
      const replies = messages.map((m) => ({ status: 200, body: { txn: m.txn, vote: 'yes' } }))
      return Response.json({ replies })
    },
  })
  return `http://127.0.0.1:${server.port}`
}

test('a callback that throws keeps no other message of its batch from its event', async () => {
  const url = yesVoter()
  const sender = new MessageSender(5000, true)
  const error = spyOn(console, 'error').mockImplementation(() => {})
  const events = new Map<string, CoordinatorEvent>()
  const { promise: all, resolve } = Promise.withResolvers<void>()
  // Two requests may be in flight, so t3-t5 queue behind t1 and t2 and go as one batch.
  const txns = ['t1', 't2', 't3', 't4', 't5']
  for (const txn of txns) {
    const message = { type: 'prepare', txn, participants: [url] } as const
    sender.send(url, message, undefined, (event) => {
      events.set(txn, event)
      if (events.size === txns.length) resolve()
      if (txn === 't3') throw new Error('a bug in the handler')
    })
  }
  await Promise.race([all, Bun.sleep(5000)])
  const logged = error.mock.calls.map((call) => String(call[0]))
  error.mockRestore()
  expect([...events.keys()].sort()).toEqual(txns)
  for (const event of events.values()) expect(event).toMatchObject({ type: 'vote', vote: 'yes' })
  expect(sender.requests).toBe(3)
  expect(logged).toHaveLength(1)
  expect(logged[0]).toContain('prepare t3: Error: a bug in the handler')
})
