// The coordinator service's HTTP API: start transactions, look them up, see the cluster.
import { Hono } from 'hono'
import type { CoordinatorNode } from './coordinator-node.ts'
import { isTxnId, txnIdError, type CoordinatorTxn } from './core.ts'
import { httpError, readJsonObject, useJsonErrors } from './http-app.ts'

export type CoordinatorApiOptions = {
  participants: readonly string[]
  /** How long POST /transactions waits for acknowledgements after the decision. */
  ackWaitMs: number
}

export function createCoordinatorApp(node: CoordinatorNode, options: CoordinatorApiOptions): Hono {
  const app = new Hono()
  useJsonErrors(app)
  app.post('/transactions', async (c) => {
    const body = await readJsonObject(c)
    const id = idOf(body)
    if (body.protocol !== undefined && body.protocol !== '2pc') {
      throw httpError(400, `invalid "protocol" ${JSON.stringify(body.protocol)}: expected "2pc"`)
    }
    if (!node.txns.has(id) && options.participants.length === 0) {
      throw httpError(409, 'no participants configured: start the service with --participant')
    }
    await node.run(id, options.participants)
    const settled = await Promise.race([node.when(id, 'done'), Bun.sleep(options.ackWaitMs)])
    return c.json(outcomeOf(settled ?? node.txns.get(id)!))
  })
  app.get('/transactions/:id', (c) => {
    const id = c.req.param('id')
    if (!isTxnId(id)) throw httpError(400, txnIdError(id))
    const t = node.txns.get(id)
    // Under presumed abort, `unknown` means abort: nothing about it was ever committed here.
    if (!t) return c.json({ id, state: 'unknown' })
    return c.json({ ...outcomeOf(t), state: t.decision ?? 'preparing', phase: t.phase })
  })
  app.get('/status', async (c) => c.json(await statusOf(node, options.participants)))
  app.get('/healthz', (c) => c.json({ ok: true }))
  return app
}

function idOf(body: Record<string, unknown>): string {
  if (body.id === undefined) return crypto.randomUUID()
  if (!isTxnId(body.id)) throw httpError(400, txnIdError(body.id).replace('"txn"', '"id"'))
  return body.id
}

function outcomeOf(t: CoordinatorTxn) {
  return {
    id: t.txn,
    decision: t.decision,
    votes: Object.fromEntries(t.participants.map((p) => [p, t.votes[p] ?? null])),
    reasons: t.reasons,
    acknowledged: t.phase === 'done',
    ...(Object.keys(t.refusals).length > 0 ? { refusals: t.refusals } : {}),
  }
}

async function statusOf(node: CoordinatorNode, participants: readonly string[]) {
  const counts = { preparing: 0, commit: 0, abort: 0, delivering: 0 }
  const delivering: { id: string; decision: string | null; waitingFor: string[] }[] = []
  for (const t of node.txns.values()) {
    counts[t.decision ?? 'preparing'] += 1
    if (t.phase === 'deciding') {
      counts.delivering += 1
      const waitingFor = t.participants.filter((p) => !t.acks.includes(p))
      if (delivering.length < 100) delivering.push({ id: t.txn, decision: t.decision, waitingFor })
    }
  }
  return {
    role: 'coordinator',
    participants: await Promise.all(participants.map(probe)),
    counts,
    delivering,
  }
}

async function probe(url: string): Promise<{ url: string; reachable: boolean; ms: number | null }> {
  const started = performance.now()
  try {
    const response = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) })
    await response.body?.cancel()
    return { url, reachable: response.ok, ms: Math.round(performance.now() - started) }
  } catch {
    return { url, reachable: false, ms: null }
  }
}
