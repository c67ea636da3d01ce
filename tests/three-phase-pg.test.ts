// Three-phase commit on PostgreSQL participants: PREPARE TRANSACTION at can-commit, the
// precommit beside it in the log table, and a participant restarted while precommitted comes
// back precommitted (its attempt numbers too), then commits.
import { afterEach, expect, test } from 'bun:test'
import { SQL } from 'bun'
import { CoordinatorNode, ParticipantNode, bunPorts, type Ports } from '../lib.ts'
import { openPgStore } from '../lib/store/pg-store.ts'
import { createApp } from '../lib/http/participant-app.ts'
import { cleanup, tempDir } from '../testing/processes.ts'
import { usePgCluster } from '../testing/pg.ts'

const pg = usePgCluster('twophase-3pc-pg-')
afterEach(cleanup)
const stops: (() => unknown)[] = []
afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop()
})

const { freshDatabase } = pg

/** A participant on database `url`, served on `port` (0: any). */
async function participant(url: string, port = 0) {
  const store = await openPgStore(url, () => {})
  const node = new ParticipantNode(tempDir(), null, { store, inDoubtAfterMs: 60_000 })
  await node.start()
  const server = Bun.serve({ port, hostname: '127.0.0.1', fetch: createApp(node).fetch })
  const stop = async () => {
    server.stop(true)
    await node.close()
  }
  stops.push(stop)
  return { node, stop, url: `http://127.0.0.1:${server.port}`, port: server.port }
}

/** Ports that drop every commit the coordinator sends. */
const losingCommits: Ports = {
  ...bunPorts,
  warn: () => {},
  request: (method, url, body, ms) =>
    JSON.stringify(body ?? '').includes('"type":"commit"')
      ? Promise.resolve(null)
      : bunPorts.request(method, url, body, ms),
}

async function preparedXacts(url: string): Promise<number> {
  const sql = new SQL({ url, max: 1 })
  const [row] = await sql`SELECT count(*)::int AS n FROM pg_prepared_xacts
    WHERE database = current_database()`
  await sql.close()
  return row.n as number
}

const set = [{ op: 'set', key: 'data', value: 777 }] as const

test('three-phase on PostgreSQL: precommitted survives a restart, then commits', async () => {
  const dbs = [await freshDatabase(), await freshDatabase(), await freshDatabase()]
  const parts = [await participant(dbs[0]!), await participant(dbs[1]!), await participant(dbs[2]!)]
  const urls = parts.map((p) => p.url)
  const coordinator = new CoordinatorNode({
    dir: tempDir(),
    alwaysBatch: true,
    ports: losingCommits,
  })
  await coordinator.start()
  stops.push(() => coordinator.close())
  const ops = Object.fromEntries(urls.map((u) => [u, set]))
  const decided = await coordinator.run('P3', urls, ops, '3pc')
  expect(decided.decision).toBe('commit')
  // Every commit was lost: each participant is precommitted (the last precommit may still be
  // on its way when a quorum decided), its PREPARE TRANSACTION still open.
  const states = () => parts.map((p) => p.node.state('P3').state)
  for (const deadline = Date.now() + 10_000; Date.now() < deadline; await Bun.sleep(10)) {
    if (states().every((s) => s === 'precommitted')) break
  }
  expect(states()).toEqual(['precommitted', 'precommitted', 'precommitted'])
  expect(await preparedXacts(dbs[0]!)).toBe(1)

  await parts[0]!.stop()
  const back = await participant(dbs[0]!, parts[0]!.port)
  const t = back.node.state('P3')
  expect([t.state, t.three?.lastAttempt, t.three?.self]).toEqual(['precommitted', 0, urls[0]])
  expect(back.node.store.locks().get('data')).toBe('P3')
  const reply = await fetch(`${back.url}/commit`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ txn: 'P3' }),
  })
  expect(reply.status).toBe(200)
  expect(await back.node.store.get('data')).toBe(777)
  expect(await preparedXacts(dbs[0]!)).toBe(0)
})
