// A write that fails (a full or failing disk) is an error the node survives, never a wedge:
// the participant answers 503 and keeps what is on disk; the coordinator writes its decision
// again once the disk is back, and the transaction finishes without a restart. The disk here
// is the nodes' real SQLite database, made to refuse every write with `PRAGMA query_only`.
import { afterEach, expect, test } from 'bun:test'
import type { Database } from 'bun:sqlite'
import {
  CoordinatorNode,
  DurableLog,
  ParticipantNode,
  SqliteStore,
  bunPorts,
  type CoordinatorRecord,
} from '../../lib.ts'
import { createCoordinatorApp } from '../../lib/http/coordinator-app.ts'
import { createApp } from '../../lib/http/participant-app.ts'
import { cleanup, tempDir } from '../../testing/processes.ts'

afterEach(cleanup)

const stops: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop()
})

function diskFails(db: Database, failing: boolean): void {
  db.run(`PRAGMA query_only = ${failing ? 'ON' : 'OFF'}`)
}

async function participant() {
  const dir = tempDir()
  const store = new SqliteStore(dir)
  const node = new ParticipantNode(dir, null, { store })
  await node.start()
  const app = createApp(node)
  const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: app.fetch })
  stops.push(async () => {
    server.stop(true)
    await node.close()
  })
  return { store, node, app, url: `http://127.0.0.1:${server.port}` }
}

type App = { request: (path: string, init: RequestInit) => Response | Promise<Response> }

/** POSTs JSON to `app`, asking for a JSON answer. */
function post(app: App) {
  return async (path: string, body: object) => {
    const headers = { accept: 'application/json', 'content-type': 'application/json' }
    const response = await app.request(path, {
      method: 'POST',
      body: JSON.stringify(body),
      headers,
    })
    return { status: response.status, body: (await response.json()) as Record<string, unknown> }
  }
}

test('a participant whose disk fails answers 503, keeps what is on disk, then works', async () => {
  const p = await participant()
  const send = post(p.app)
  const prepare = { txn: 'f1', ops: [{ op: 'set', key: 'k', value: 1 }] }
  diskFails(p.store.db, true)
  const refused = await send('/prepare', prepare)
  expect(refused.status).toBe(503)
  expect(String(refused.body.error)).toContain('cannot record f1')
  expect(p.node.state('f1').state).toBe('unknown')
  expect(p.store.locks().size).toBe(0) // the check's lock is let go

  diskFails(p.store.db, false)
  expect((await send('/prepare', prepare)).body.vote).toBe('yes')
  diskFails(p.store.db, true)
  const commitRefused = await send('/commit', { txn: 'f1' })
  expect(commitRefused.status).toBe(503)
  expect(p.node.state('f1').state).toBe('prepared') // what is on disk stands
  expect(Object.fromEntries(p.store.locks())).toEqual({ k: 'f1' })

  diskFails(p.store.db, false)
  expect((await send('/commit', { txn: 'f1' })).body.state).toBe('committed')
  expect(await p.store.get('k')).toBe(1)
  expect(p.store.locks().size).toBe(0)
})

test('a coordinator whose decision write fails writes it again once the disk is back', async () => {
  const [p0, p1] = [await participant(), await participant()]
  const warnings = Promise.withResolvers<string>()
  const ports = {
    ...bunPorts,
    warn: (line: string) => void (line.includes('decision of d1') && warnings.resolve(line)),
  }
  const dir = tempDir()
  const log = new DurableLog<CoordinatorRecord>(`${dir}/coordinator.db`)
  const node = new CoordinatorNode({ dir, log, ports, alwaysBatch: true, lazyAborts: true })
  await node.start()
  stops.push(() => node.close())
  const participants = [p0.url, p1.url]
  const app = createCoordinatorApp(node, { participants, ackWaitMs: 10_000 })

  diskFails(log.db, true)
  let answered = false
  const posted = Promise.resolve(
    app.request('/transactions', { method: 'POST', body: '{"id":"d1"}' }),
  ).then((response) => {
    answered = true
    return response.json() as Promise<Record<string, unknown>>
  })
  expect(await warnings.promise).toContain('not written')
  // Not told to anyone: the participants stay prepared, the client waits, and a participant
  // asking in doubt hears that it is still being decided.
  const asked = (await (await app.request('/transactions/d1')).json()) as { state: string }
  expect(asked.state).toBe('preparing')
  expect(answered).toBe(false)
  expect([p0.node.state('d1').state, p1.node.state('d1').state]).toEqual(['prepared', 'prepared'])

  diskFails(log.db, false)
  const outcome = await posted
  expect(outcome.decision).toBe('commit')
  expect(outcome.acknowledged).toBe(true)
  expect([p0.node.state('d1').state, p1.node.state('d1').state]).toEqual(['committed', 'committed'])
  expect(log.records().filter((r) => r.type === 'decision')).toEqual([
    { type: 'decision', txn: 'd1', decision: 'commit', participants },
  ])
})
