// examples/two-databases.ts runs to its verdict; and, step by step on real processes, a transfer
// across the two databases survives SIGKILLs of the coordinator, a participant and the database
// server while it is prepared in both, with nothing left in pg_prepared_xacts.
import { afterEach, expect, test } from 'bun:test'
import { SQL } from 'bun'
import {
  cleanup,
  freePort,
  getJson,
  kill,
  runCommand,
  startCoordinatorService,
  startParticipant,
  tempDir,
  waitFor,
  type Node,
} from '../testing/processes.ts'
import { usePgCluster } from '../testing/pg.ts'
import { INITIAL, check, createDatabases, opsOf } from '../testing/two-databases.ts'
import { preparedXacts } from '../testing/inventory.ts'
import type { Databases, Transfer } from '../testing/two-databases.ts'

const pg = usePgCluster('twophase-two-databases-')
let clusters = 0
afterEach(cleanup)

test('the example: both databases agree after the kills', async () => {
  const run = await runCommand(
    [process.execPath, 'examples/two-databases.ts'],
    ['--transfers', '40'],
  )
  if (run.code !== 0) console.error(run.stderr) // what was left unsettled, if that was it
  expect(run.stdout).toContain('SIGKILLed the database server and restarted it')
  expect(run.stdout).toContain('prepared: 0')
  expect(run.stdout).toContain('verdict: both databases agree')
  expect(run.code).toBe(0)
}, 60_000)

async function balance(urls: Databases, id: string): Promise<number> {
  const db = new SQL({ url: urls.ledger, max: 1 })
  try {
    const [row] = await db`SELECT balance::int AS b FROM accounts WHERE id = ${id}`
    return row.b as number
  } finally {
    await db.close()
  }
}

type Failpoints = { coordinator?: string; audit?: string }

/** Both participants (on fixed ports, so they can come back where the coordinator knows them)
 * and a coordinator; `failpoints` crash the first coordinator or the first audit participant. */
async function cluster(failpoints: Failpoints, inDoubtAfter = '60000') {
  const urls = await createDatabases(pg.cluster().url, `_${++clusters}`)
  const dirs = { ledger: tempDir(), audit: tempDir() }
  const ports = { ledger: freePort(), audit: freePort() }
  const start = (which: 'ledger' | 'audit', failpoint?: string) =>
    startParticipant(dirs[which], {
      port: ports[which],
      args: ['--store', urls[which], '--allow-sql', '--in-doubt-after', inDoubtAfter],
      env: failpoint ? { TWOPHASE_FAILPOINTS: failpoint } : {},
    })
  const nodes = { ledger: await start('ledger'), audit: await start('audit', failpoints.audit) }
  const coordinatorDir = tempDir()
  const participants = [`ledger=${nodes.ledger.url}`, `audit=${nodes.audit.url}`]
  const coordinator = (failpoint?: string) =>
    startCoordinatorService(coordinatorDir, {
      participants,
      args: ['--timeout', '2000'],
      env: failpoint ? { TWOPHASE_FAILPOINTS: failpoint } : {},
    })
  const first = await coordinator(failpoints.coordinator)
  return { urls, nodes, start, first, coordinator }
}

function submit(coordinator: Node, t: Transfer) {
  return fetch(`${coordinator.url}/transactions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ id: t.id, ops: opsOf(t) }),
  })
}

test('commit decided, then coordinator, ledger participant and server SIGKILLed', async () => {
  const c = await cluster({ coordinator: 'coordinator-after-decision-logged@t1' })
  const t1 = { id: 't1', from: 'alice', to: 'bob', amount: 300 }
  const answer = submit(c.first, t1).catch(() => null)
  await c.first.proc.exited // it died with the commit decided and sent to nobody
  await answer
  expect(await preparedXacts(pg.cluster().url)).toBe(2) // one in each database
  await kill(c.nodes.ledger)
  await pg.cluster().kill()
  await pg.cluster().start()
  expect(await preparedXacts(pg.cluster().url)).toBe(2) // prepared transactions survive a crash
  c.nodes.ledger = await c.start('ledger')
  const coordinator = await c.coordinator()
  await waitFor(async () => (await getJson(`${coordinator.url}/transactions/t1`)).acknowledged)
  expect(await preparedXacts(pg.cluster().url)).toBe(0)
  expect(await balance(c.urls, 'alice')).toBe(INITIAL - 300)
  expect(await balance(c.urls, 'bob')).toBe(INITIAL + 300)
  const result = await check(c.urls)
  expect(result.agree).toBe(true)
  expect([...result.audited]).toEqual(['t1'])
}, 60_000)

test('audit participant SIGKILLed after PREPARE TRANSACTION: aborted in both', async () => {
  const c = await cluster({ audit: 'pg-after-prepare@t2' }, '200')
  const t2 = { id: 't2', from: 'carol', to: 'dave', amount: 100 }
  const answer = (await (await submit(c.first, t2)).json()) as { decision: string }
  expect(answer.decision).toBe('abort')
  await c.nodes.audit.proc.exited
  expect(await preparedXacts(pg.cluster().url)).toBe(1) // the audit's, which nobody has decided
  c.nodes.audit = await c.start('audit')
  // In doubt, it asks the coordinator: abort, so ROLLBACK PREPARED.
  await waitFor(async () => (await preparedXacts(pg.cluster().url)) === 0)
  expect((await getJson(`${c.nodes.audit.url}/transactions/t2`)).state).toBe('aborted')
  expect(await balance(c.urls, 'carol')).toBe(INITIAL)
  const result = await check(c.urls)
  expect(result.agree).toBe(true)
  expect(result.audited.size).toBe(0)
}, 60_000)
