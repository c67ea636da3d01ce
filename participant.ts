// A participant node: guards a resource, votes on prepare, and records the outcome.
//   bun participant.ts [--port 9000] [--host 0.0.0.0] [--dir .]
import { Hono, type Context } from 'hono'
import { parseArgs } from 'node:util'
import { resolve } from 'node:path'
import { isTxnId, txnIdError, type Reply } from './lib.ts'
import { httpError, readJsonObject, useJsonErrors, wantsJson } from './lib.ts'
import { ParticipantNode, readVotesFile } from './lib.ts'
import { parsePort, fail } from './lib.ts'

export function createApp(node: ParticipantNode): Hono {
  const app = new Hono()
  useJsonErrors(app)
  app.post('/prepare', async (c) =>
    answer(c, await node.handle({ type: 'prepare', txn: await txnOf(c) })),
  )
  app.post('/commit', async (c) =>
    answer(c, await node.handle({ type: 'decide', txn: await txnOf(c), decision: 'commit' })),
  )
  app.post('/abort', async (c) =>
    answer(c, await node.handle({ type: 'decide', txn: await txnOf(c), decision: 'abort' })),
  )
  app.get('/transactions/:txn', (c) => {
    const txn = c.req.param('txn')
    if (!isTxnId(txn)) throw httpError(400, txnIdError(txn))
    const t = node.state(txn)
    return c.json({ txn, state: t.state, vote: t.vote, reason: t.reason, heuristic: t.heuristic })
  })
  app.get('/status', (c) => {
    const prepared = [...node.txns.values()].filter((t) => t.state === 'prepared').map((t) => t.txn)
    return c.json({ role: 'participant', dir: node.dir, counts: node.counts(), prepared })
  })
  app.get('/healthz', (c) => c.json({ ok: true }))
  return app
}

async function txnOf(c: Context): Promise<string> {
  const body = await readJsonObject(c)
  if (!isTxnId(body.txn)) throw httpError(400, txnIdError(body.txn))
  return body.txn
}

/** The classic answers are plain text (`yes`, `no`, `committed`); JSON on request. */
function answer(c: Context, reply: Reply): Response {
  if (reply.kind === 'conflict') return c.json({ error: reply.error, txn: reply.txn }, 409)
  const json = wantsJson(c)
  if (reply.kind === 'vote') {
    return json
      ? c.json({ txn: reply.txn, vote: reply.vote, reason: reply.reason })
      : c.text(reply.vote)
  }
  return json ? c.json({ txn: reply.txn, state: reply.state }) : c.text(reply.state)
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { port: { type: 'string' }, host: { type: 'string' }, dir: { type: 'string' } },
    strict: true,
  })
  const dir = resolve(values.dir ?? '.')
  const port = parsePort(values.port ?? Bun.env.PORT ?? '9000', 'port')
  const hostname = values.host ?? Bun.env.HOST ?? '0.0.0.0'
  const node = new ParticipantNode(dir, readVotesFile(dir))
  await node.start()
  const server = Bun.serve({ port, hostname, fetch: createApp(node).fetch })
  console.log(`participant listening on http://${hostname}:${server.port} (dir ${dir})`)
  const stop = () => void server.stop().then(() => process.exit(0))
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

if (import.meta.main) {
  try {
    await main()
  } catch (error) {
    fail(error)
  }
}
