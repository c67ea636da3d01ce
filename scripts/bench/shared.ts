// `bench --log-db URL|embedded [--coordinators 1,2,3]`: the coordinator's log in PostgreSQL.
// For each count of coordinators, a fresh cluster (three SQLite participants and that many
// `coordinator.ts serve --log-db`, on a fresh database of the log's server), a warm-up, then
// each concurrency measured with the clients spread over the coordinators in turn; first the
// same with one coordinator on its SQLite log, for comparison. `embedded`: the project's
// throwaway PostgreSQL (lib/store/pg-cluster.ts), started in the bench's directory, on the same
// two cores as everything else.
import { chmodSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { SQL } from 'bun'
import { startPgCluster, type PgCluster } from '../../lib/store/pg-cluster.ts'
import { spawnCoordinatorService, spawnParticipant, type Node } from '../../testing/nodes.ts'
import { bodyOf, cpuSeconds, round, type Settings } from './level.ts'
import { drive as driveLoad } from './load.ts'
import { table } from './table.ts'

export type SharedRow = {
  log: 'sqlite' | 'postgresql'
  coordinators: number
  concurrency: number
  perSecond: number
  p50: number
  p99: number
  /** CPU µs per transaction: all coordinators together, and the PostgreSQL server's. */
  coordinatorMicros: number
}

type Run = { coordinators: Node[]; participants: Node[] }

/** The comparison rows: SQLite with one coordinator, then PostgreSQL with each count. */
export async function sharedLogRuns(
  s: Settings,
  target: string,
  counts: number[],
  levels: number[],
  started: Node[],
): Promise<SharedRow[]> {
  let pg: PgCluster | null = null
  if (target === 'embedded') {
    chmodSync(s.root, 0o755) // the server's own user must reach its data directory
    pg = await startPgCluster(join(s.root, 'pg'))
  }
  const server = pg?.url ?? target
  const rows: SharedRow[] = []
  try {
    rows.push(...(await measure(s, await start(s, null, 1, started), 'sqlite', levels)))
    for (const n of counts) {
      const database = await freshDatabase(server, `bench_log_${n}_${Date.now().toString(36)}`)
      rows.push(...(await measure(s, await start(s, database, n, started), 'postgresql', levels)))
    }
  } finally {
    for (const node of started.splice(0)) node.proc.kill('SIGKILL')
    await pg?.stop()
  }
  return rows
}

async function freshDatabase(server: string, name: string): Promise<string> {
  const db = new SQL({ url: server, max: 1 })
  try {
    await db.unsafe(`CREATE DATABASE ${name}`)
  } finally {
    await db.close()
  }
  const url = new URL(server)
  url.pathname = `/${name}`
  return url.toString()
}

async function start(s: Settings, log: string | null, n: number, started: Node[]): Promise<Run> {
  const stamp = `${log ? 'pg' : 'sqlite'}-${n}-${Date.now().toString(36)}`
  const dirOf = (name: string) => {
    const dir = join(s.root, stamp, name)
    mkdirSync(dir, { recursive: true })
    return dir
  }
  const participants: Node[] = []
  for (let i = 0; i < 3; i++) participants.push(await spawnParticipant(dirOf(`p${i}`)))
  started.push(...participants)
  const args = ['--ack-wait', String(s.ackWait), ...(log ? ['--log-db', log] : [])]
  const coordinators: Node[] = []
  for (let i = 0; i < n; i++) {
    const options = { participants: participants.map((p) => p.url), args }
    coordinators.push(await spawnCoordinatorService(dirOf(`c${i}`), options))
  }
  started.push(...coordinators)
  return { coordinators, participants }
}

async function measure(s: Settings, run: Run, log: SharedRow['log'], levels: number[]) {
  if (s.warmup > 0) await drive(s, run, 64, s.warmup, 'warm')
  const rows: SharedRow[] = []
  for (const concurrency of levels) {
    const cpu0 = run.coordinators.map((c) => cpuSeconds(c.proc.pid))
    const load = await drive(s, run, concurrency, s.count, `c${concurrency}`)
    const cpu = run.coordinators.reduce((a, c, i) => a + cpuSeconds(c.proc.pid) - cpu0[i]!, 0)
    const n = run.coordinators.length
    rows.push({ log, coordinators: n, concurrency, ...load, coordinatorMicros: 0 })
    rows.at(-1)!.coordinatorMicros = Math.round((1e6 * cpu) / s.count)
  }
  for (const node of [...run.coordinators, ...run.participants]) node.proc.kill('SIGTERM')
  await Promise.all([...run.coordinators, ...run.participants].map((n) => n.proc.exited))
  return rows
}

/** A closed loop of `concurrency` clients (Bun's fetch), client i sending to coordinator
 * i mod n: every coordinator gets its share. */
async function drive(s: Settings, run: Run, concurrency: number, total: number, tag: string) {
  const name = `${tag}-${Date.now().toString(36)}`
  const url = run.coordinators.map((c) => c.url)
  const spec = { url, concurrency, total, bodyOf: (i: number) => bodyOf(s, i, name) }
  const load = await driveLoad('fetch', spec, s.root)
  return { perSecond: Math.round(total / load.seconds), p50: round(load.p50), p99: round(load.p99) }
}

export function sharedLines(rows: SharedRow[]): string[] {
  const columns = [
    { label: 'log', width: 10 },
    { label: 'coordinators', width: 12 },
    { label: 'conc', width: 4 },
    { label: 'txn/s', width: 6 },
    { label: 'p50 ms', width: 7 },
    { label: 'p99 ms', width: 7 },
    { label: 'coord µs/txn', width: 12 },
  ]
  const cells = rows.map((r) =>
    [r.log, r.coordinators, r.concurrency, r.perSecond, r.p50, r.p99, r.coordinatorMicros].map(
      String,
    ),
  )
  return table(columns, cells)
}
