// Coordinators on one log in PostgreSQL (`serve --log-db`): real processes on loopback. Two
// coordinators take bank transfers at once; one is SIGKILLed halfway and never restarted; the
// other takes over its transactions once its lease runs out. Then: money conserved, every
// balance the sum of the committed transfers, nothing prepared or locked, every client's
// outcome (asked again of the survivor when the first went silent) the log's one decision. And
// fencing: a coordinator stopped past its lease is taken over, and when it wakes it writes
// nothing more and stops.
import { afterEach, describe, expect, test } from 'bun:test'
import {
  mulberry32,
  openAccounts,
  planTransfers,
  readBalances,
  runTransfers,
  transfer,
  waitSettled,
  type Bank,
  type Outcome,
} from '../testing/bank.ts'
import {
  cleanup,
  getJson,
  kill,
  postJson,
  runCoordinator,
  startCoordinatorService,
  startParticipant,
  tempDir,
  waitFor,
  type Node,
} from '../testing/processes.ts'
import { pgQuery, usePgCluster } from '../testing/pg.ts'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { CoordinatorNode } from '../lib/node/coordinator-node.ts'
import { PgLog } from '../lib/store/pg-log.ts'
import { Fenced } from '../lib/store/pg-lease.ts'

const pg = usePgCluster('twophase-shared-log-')
afterEach(cleanup)

const LEASE_MS = 1000
const ACCOUNTS = 12
const INITIAL = 100
let databases = 0

/** A fresh database for the log of one test. */
async function logDb(): Promise<string> {
  const name = `coordlog${++databases}`
  await pgQuery(pg.cluster().url, `CREATE DATABASE ${name}`)
  return pg.cluster().url.replace(/\/postgres$/, `/${name}`)
}

async function startCluster(log: string, leaseMs = LEASE_MS, env: Record<string, string> = {}) {
  const participants: Node[] = []
  const args = ['--in-doubt-after', '300']
  for (let i = 0; i < 3; i++) participants.push(await startParticipant(tempDir(), { args }))
  const urls = participants.map((p) => p.url)
  const coordinatorArgs = ['--log-db', log, '--lease', String(leaseMs), '--timeout', '1000']
  const coordinators: Node[] = []
  for (let i = 0; i < 2; i++) {
    // The last started gets the failpoints, if any, and comes first: it knows of the other
    // from its start, so its prepares name it.
    const options = { participants: urls, args: coordinatorArgs, env: i === 1 ? env : {} }
    coordinators.push(await startCoordinatorService(tempDir(), options))
  }
  return { participants, urls, coordinators: coordinators.reverse() }
}

/** Each transaction's decisions in the log, and which coordinator wrote each. */
async function decisionsIn(log: string): Promise<Map<string, Set<string>>> {
  const rows = await pgQuery(
    log,
    "SELECT txn, record->>'decision' AS decision FROM twophase_coordinator_log " +
      "WHERE record->>'type' = 'decision'",
  )
  const decisions = new Map<string, Set<string>>()
  for (const r of rows) {
    if (!decisions.has(r.txn)) decisions.set(r.txn, new Set())
    decisions.get(r.txn)!.add(r.decision)
  }
  return decisions
}

describe('two coordinators on one PostgreSQL log', () => {
  test('one SIGKILLed halfway: the other finishes its work; outcomes are the log’s', async () => {
    const log = await logDb()
    const { urls, coordinators } = await startCluster(log)
    const [first, second] = coordinators as [Node, Node]
    const banks: Bank[] = coordinators.map((c) => ({ coordinator: c.url, participants: urls }))
    await openAccounts(banks[1]!, ACCOUNTS, INITIAL)
    const plan = planTransfers(400, ACCOUNTS, mulberry32(16), { prefix: 'ha' })
    let killedAt = 0
    const [toFirst, toSecond] = [plan.filter((_, i) => i % 2 === 0), plan.filter((_, i) => i % 2)]
    const onFirst = runTransfers(banks[0]!, toFirst, {
      concurrency: 6,
      onDone: (_, done) => {
        if (done === 60) void kill(first).then(() => (killedAt = Date.now()))
      },
    })
    const onSecond = runTransfers(banks[1]!, toSecond, { concurrency: 6 })
    const sent = [...(await onFirst), ...(await onSecond)]
    // A client that heard nothing from the coordinator it used asks the other, with the same id.
    const outcomes: Outcome[] = await Promise.all(
      sent.map((o) => (o.decision === null ? transfer(banks[1]!, o) : o)),
    )
    expect(outcomes.filter((o) => o.decision === null)).toEqual([])
    expect(sent.filter((o) => o.decision === null).length).toBeGreaterThan(0)
    // The survivor took the first's lease, and nothing stays prepared or locked anywhere.
    await waitFor(async () => {
      const { coordinators } = await getJson(`${second.url}/status`)
      return coordinators.some((c: any) => c.url === first.url && c.takenBy === second.url)
    })
    await waitSettled(banks[1]!, LEASE_MS + 5000)
    const settledMs = Date.now() - killedAt
    // What the first had claimed and not finished when it died is the second's now.
    const ids = toFirst.map((t) => `'${t.id}'`).join(',')
    const adopted = await pgQuery(
      log,
      `SELECT count(*)::int AS n FROM twophase_claims
       WHERE owner = '${second.url}' AND txn IN (${ids})`,
    )
    expect(adopted[0].n).toBeGreaterThan(0)
    expect(settledMs).toBeLessThan(LEASE_MS + 5000)

    const decisions = await decisionsIn(log)
    for (const o of outcomes) {
      const logged = decisions.get(o.id)
      // A commit is in the log; an abort may be presumed (never written: the claim alone).
      if (o.decision === 'commit' || logged) expect([...logged!]).toEqual([o.decision!])
    }
    for (const [txn, set] of decisions)
      expect({ txn, decisions: set.size }).toEqual({ txn, decisions: 1 })
    const expected = Array.from({ length: ACCOUNTS }, () => INITIAL)
    for (const o of outcomes.filter((o) => o.decision === 'commit')) {
      expected[o.from]! -= o.amount
      expected[o.to]! += o.amount
    }
    expect(await readBalances(banks[1]!, ACCOUNTS)).toEqual(expected)
    expect(outcomes.filter((o) => o.decision === 'commit').length).toBeGreaterThan(50)
  }, 120_000)

  test('one stopped past its lease is taken over, then fenced: it writes nothing', async () => {
    const log = await logDb()
    const { urls, coordinators } = await startCluster(log)
    const [first, second] = coordinators as [Node, Node]
    const reply = await postJson(`${first.url}/transactions`, { id: 'before', ops: [] })
    expect(reply.body.decision).toBe('commit')
    first.proc.kill('SIGSTOP')
    await waitFor(async () => {
      const { coordinators } = await getJson(`${second.url}/status`)
      return coordinators.some((c: any) => c.url === first.url && c.takenBy === second.url)
    }, LEASE_MS * 10)
    const [{ at: takenAt }] = await pgQuery(log, 'SELECT at FROM twophase_takeovers')
    first.proc.kill('SIGCONT')
    // It finds out at its next renewal or write, says so and stops.
    expect(await first.proc.exited).toBe(1)
    const after = await pgQuery(
      log,
      `SELECT count(*)::int AS n FROM twophase_coordinator_log
       WHERE writer = '${first.url}' AND at > '${new Date(takenAt).toISOString()}'`,
    )
    expect(after[0].n).toBe(0)
    // A repeated id is answered from the log by the other coordinator.
    const again = await postJson(`${second.url}/transactions`, { id: 'before', ops: [] })
    expect(again.body.decision).toBe('commit')
    expect(urls.length).toBe(3)
  }, 60_000)

  test('a participant in doubt whose coordinator is gone asks another on the log', async () => {
    const log = await logDb()
    // A long lease: nobody takes the first over during the test, so only asking settles it.
    const env = { TWOPHASE_FAILPOINTS: 'coordinator-after-decision-logged@d1' }
    const { participants, urls, coordinators } = await startCluster(log, 60_000, env)
    const [first, second] = coordinators as [Node, Node]
    const ops = [{ op: 'set', key: 'k', value: 'v' }]
    const reply = await postJson(`${first.url}/transactions`, { id: 'd1', ops }).catch(() => null)
    expect(reply).toBeNull() // it died once its commit was durable, before sending it
    expect(await first.proc.exited).not.toBe(0)
    await waitFor(async () => {
      const states = await Promise.all(urls.map((u) => getJson(`${u}/transactions/d1`)))
      return states.every((s) => s.state === 'committed')
    }, 15_000)
    const { coordinators: members } = await getJson(`${second.url}/status`)
    expect(members.find((m: any) => m.url === first.url).takenBy).toBeNull()
    expect(participants.length).toBe(3)
  }, 60_000)

  test('fencing: a log taken over writes nothing; a claim is the first one’s only', async () => {
    const url = await logDb()
    const a = await PgLog.open(url, { name: 'http://a:1', leaseMs: 300 })
    const b = await PgLog.open(url, { name: 'http://b:1', leaseMs: 60_000 })
    try {
      expect(await a.claim('f1', ['http://p:1'], '2pc')).toBe(true)
      expect(await b.claim('f1', ['http://p:1'], '2pc')).toBe(false) // a repeated id
      await a.append({ type: 'begin', txn: 'f1', participants: ['http://p:1'] }, undefined, false)
      // a renews no more: once its lease runs out, b takes over its unfinished transaction.
      let taken: string[] = []
      await waitFor(async () => (taken = (await b.takeOver()).map((r) => r.txn)).length > 0)
      expect(taken).toContain('f1')
      const decision = { type: 'decision', txn: 'f1', decision: 'commit' } as const
      await expect(a.append(decision, undefined, false)).rejects.toBeInstanceOf(Fenced)
      await expect(a.renew()).rejects.toBeInstanceOf(Fenced)
      const written = await pgQuery(
        url,
        "SELECT writer, record->>'type' AS type FROM twophase_coordinator_log",
      )
      expect(written).toEqual([{ writer: 'http://a:1', type: 'begin' }])
      expect((await b.lookup('f1')).map((r) => r.type)).toEqual(['begin', 'begin'])
    } finally {
      a.close()
      b.close()
    }
  })

  test('a claim committed though its answer was lost is recovered, not waited on', async () => {
    const log = await logDb()
    const { urls, coordinators } = await startCluster(log)
    const [first, second] = coordinators as [Node, Node]
    // As if the claim's INSERT had committed and the connection dropped before its answer: the
    // claim is the first's, and the first never ran the transaction.
    await pgQuery(
      log,
      `INSERT INTO twophase_claims (txn, owner, participants)
       VALUES ('lost1', '${first.url}', '${JSON.stringify(urls)}'::jsonb)`,
    )
    const ops = [{ op: 'set', key: 'lost', value: 1 }]
    // The client asks again with the same id: the first recovers it from the log (nothing was
    // prepared, so presumed abort), instead of waiting for a decision nobody would make.
    const again = await postJson(`${first.url}/transactions`, { id: 'lost1', ops })
    expect({ status: again.status, decision: again.body.decision }).toEqual({
      status: 200,
      decision: 'abort',
    })
    const elsewhere = await postJson(`${second.url}/transactions`, { id: 'lost1', ops })
    expect(elsewhere.body.decision).toBe('abort')
    expect((await decisionsIn(log)).get('lost1')).toEqual(new Set(['abort']))
  }, 60_000)

  test('decision.txt shows a decision once, though the log has it twice', async () => {
    const url = await logDb()
    const name = 'http://dup:1'
    const first = await PgLog.open(url, { name, leaseMs: 300 })
    const participants = ['http://p:1']
    expect(await first.claim('dup1', participants, '2pc')).toBe(true)
    const decision = { type: 'decision', txn: 'dup1', decision: 'commit', participants } as const
    // Its first write committed, but the answer was lost with the connection: written again.
    await first.append(decision, undefined, false)
    await first.append(decision, undefined, false)
    first.close()
    // Restarted under the same name (once the first's lease ran out), it reads both.
    const log = await PgLog.open(url, { name, leaseMs: 300 })
    const dir = tempDir()
    const node = new CoordinatorNode({ dir, shared: log })
    try {
      expect(log.records().filter((r) => r.type === 'decision').length).toBe(2)
      await node.flushView()
      expect(readFileSync(join(dir, 'decision.txt'), 'utf8')).toBe('dup1=commit\n')
    } finally {
      node.close()
    }
  })

  test('the database down past the leases: each renews its own, none is taken', async () => {
    const log = await logDb()
    const { coordinators } = await startCluster(log)
    await pg.cluster().kill()
    await Bun.sleep(LEASE_MS * 2) // the outage must outlast the leases
    await pg.cluster().start()
    const leases = () =>
      pgQuery(
        log,
        'SELECT name, taken_by, lease_until > clock_timestamp() AS live FROM twophase_coordinators',
      )
    // Without a lease's grace, the first one back would have taken the other over at once.
    const live = async () => (await leases().catch(() => [])).filter((r) => r.live).length
    await waitFor(async () => (await live()) === 2, 10_000)
    expect((await leases()).map((r) => r.taken_by)).toEqual([null, null])
    for (const c of coordinators) {
      expect(c.proc.exitCode).toBeNull()
      const reply = await postJson(`${c.url}/transactions`, { ops: [] })
      expect(reply.body.decision).toBe('commit')
    }
  }, 60_000)

  test('batch mode on the log: decision.txt as ever, a re-run answers from the log', async () => {
    const log = await logDb()
    const { urls } = await startCluster(log)
    const dir = tempDir()
    const args = ['t1', 't2', '--log-db', log, ...urls.flatMap((u) => ['--participant', u])]
    const first = await runCoordinator(dir, args)
    expect(first).toMatchObject({ code: 0, stdout: 't1=commit\nt2=commit\n' })
    expect(await Bun.file(`${dir}/decision.txt`).text()).toBe('t1=commit\nt2=commit\n')
    expect(await Bun.file(`${dir}/coordinator.db`).exists()).toBe(false) // the log is elsewhere
    const again = await runCoordinator(dir, args)
    expect(again).toMatchObject({ code: 0, stdout: 't1=commit\nt2=commit\n' })
    const decisions = await decisionsIn(log)
    expect([...decisions.keys()].sort()).toEqual(['t1', 't2'])
  }, 60_000)
})
