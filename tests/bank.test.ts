// A bank test in the spirit of Jepsen's: accounts on three participants (one on PostgreSQL), random
// concurrent transfers through the coordinator service while participants and the PostgreSQL
// server are SIGKILLed and restarted; afterwards money is conserved, every balance matches the
// committed transfers, every participant agrees with the coordinator, and nothing is left locked.
// Then a short run of the same bank in three-phase commit, on SQLite participants only.
import { afterEach, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import {
  homeOf,
  mulberry32,
  openAccounts,
  pendingWork,
  planTransfers,
  readBalances,
  runTransfers,
  topReasons,
  waitSettled,
  type Bank,
  type Outcome,
} from '../testing/bank.ts'
import {
  cleanup,
  getJson,
  kill,
  runCommand,
  startCoordinatorService,
  startParticipant,
  tempDir,
  type Node,
} from '../testing/processes.ts'
import { ROOT } from '../testing/nodes.ts'
import { pgQuery, usePgCluster } from '../testing/pg.ts'
import { mapLimit } from '../testing/util.ts'

const SEED = Number(process.env.BANK_SEED ?? 7)
const ACCOUNTS = 30
const INITIAL = 100
const TRANSFERS = 2000
const CONCURRENCY = 16
const KILL_EVERY = 300 // completed transfers between participant kills
const PG_SERVER_KILL_AT = 1050 // completed transfers when the PostgreSQL server is killed
const PG_PARTICIPANT = 1 // the participant index whose store is PostgreSQL

// Started for the crash test's describe block only: the three-phase run needs no PostgreSQL.
let pg: ReturnType<typeof usePgCluster>
afterEach(cleanup)

/** The cluster under test: three participants (one on PostgreSQL) and a coordinator service. */
type Cluster = {
  bank: Bank
  nodes: Node[]
  coordinator: Node
  /** The PostgreSQL participant's database. */
  pgStore: string
  argsOf: (i: number) => string[]
}

async function startBank(): Promise<Cluster> {
  await pgQuery(pg.cluster().url, 'CREATE DATABASE bank')
  const pgStore = pg.cluster().url.replace(/\/postgres$/, '/bank')
  // A participant that missed an abort (presumed abort sends it once) asks after 500 ms.
  const argsOf = (i: number) => [
    '--in-doubt-after',
    '500',
    ...(i === PG_PARTICIPANT ? ['--store', pgStore] : []),
  ]
  const nodes: Node[] = []
  for (let i = 0; i < 3; i++) nodes.push(await startParticipant(tempDir(), { args: argsOf(i) }))
  const coordinator = await startCoordinatorService(tempDir(), {
    participants: nodes.map((n) => n.url),
    args: ['--timeout', '1000'],
  })
  const bank: Bank = { coordinator: coordinator.url, participants: nodes.map((n) => n.url) }
  return { bank, nodes, coordinator, pgStore, argsOf }
}

/** What the crashes did: one line per crash, and when each transfer finished relative to them. */
type Chaos = {
  crashes: string[]
  /** Transfers counted done when PostgreSQL went down and when it was back: a participant's
   * vote can be lost only in between (see `participantMismatches`). */
  pgDown: { from: number; to: number }
  /** How many transfers were done when each one finished. */
  doneAt: Map<string, number>
  /** Called as each transfer finishes: starts the crash that is due. */
  onDone: (o: Outcome, done: number) => void
  /** Resolves once every crash started has been recovered from. */
  finished: () => Promise<void>
}

/** The crashes: a random participant every KILL_EVERY transfers (the PostgreSQL one at least
 * once), restarted at once on its port and directory; and the PostgreSQL server itself once. */
function scheduleCrashes(c: Cluster): Chaos {
  const random = mulberry32(SEED ^ 0x5eed)
  const victims = Array.from({ length: Math.floor((TRANSFERS - 1) / KILL_EVERY) }, () =>
    Math.floor(random() * c.nodes.length),
  )
  if (!victims.includes(PG_PARTICIPANT)) victims[1] = PG_PARTICIPANT
  const crashes: string[] = []
  const pgDown = { from: Infinity, to: Infinity }
  const doneAt = new Map<string, number>()
  let completed = 0
  let chaos = Promise.resolve()
  const restartParticipant = async (i: number, at: number) => {
    const victim = c.nodes[i]!
    await kill(victim)
    c.nodes[i] = await startParticipant(victim.dir, { port: victim.port, args: c.argsOf(i) })
    const { prepared } = await getJson(`${c.nodes[i]!.url}/status`)
    crashes.push(`participant ${i} at ${at} (back with ${prepared.length} prepared)`)
  }
  const restartPostgres = async (at: number) => {
    pgDown.from = completed
    await pg.cluster().kill()
    await pg.cluster().start()
    pgDown.to = completed
    const held = await pgQuery(c.pgStore, 'SELECT gid FROM pg_prepared_xacts')
    crashes.push(`PostgreSQL server at ${at} (back with ${held.length} prepared)`)
  }
  const onDone = (o: Outcome, done: number) => {
    completed = done
    doneAt.set(o.id, done)
    if (done % KILL_EVERY === 0 && victims.length > 0) {
      const victim = victims.shift()!
      chaos = chaos.then(() => restartParticipant(victim, done))
    }
    if (done === PG_SERVER_KILL_AT) chaos = chaos.then(() => restartPostgres(done))
  }
  return { crashes, pgDown, doneAt, onDone, finished: () => chaos }
}

/** Transfers whose reply disagrees with the coordinator's log, or that asked other
 * participants than the two that hold their accounts. */
async function coordinatorMismatches(c: Cluster, outcomes: Outcome[]): Promise<string[]> {
  const logged = await mapLimit(outcomes, 16, (o) =>
    getJson(`${c.coordinator.url}/transactions/${o.id}`),
  )
  return outcomes.flatMap((o, i) => {
    const asked = Object.keys(o.votes).sort()
    const homes = [o.from, o.to].map((a) => c.bank.participants[homeOf(c.bank, a)]!)
    const involved = [...new Set(homes)]
    return logged[i].state === o.decision &&
      logged[i].phase === 'done' &&
      Bun.deepEquals(asked, involved.sort())
      ? []
      : [`${o.id}: replied ${o.decision} (asked ${asked}), logged ${JSON.stringify(logged[i])}`]
  })
}

/**
 * Every involved participant reached the coordinator's decision; the others never heard of
 * the transfer. Two exceptions are allowed by presumed abort, where knowing nothing of a
 * transaction means it aborted: a participant whose vote never reached the coordinator (down,
 * or killed before it could log a vote) and so was sent the abort only once, maybe into the
 * void; and a participant that voted `no` while its database was down, could not log that
 * vote and forgot it (it is never sent the abort) — only the PostgreSQL participant, only
 * after a `no`, and only for a transfer that finished after the server was killed and
 * (allowing for the ones in flight) not long after it was back, or whose `no` says the
 * database was unavailable. Returns the mismatches and how many `no` votes were forgotten.
 */
async function participantMismatches(c: Cluster, outcomes: Outcome[], chaos: Chaos) {
  const states = await mapLimit(outcomes, 16, (o) =>
    Promise.all(c.nodes.map(async (n) => (await getJson(`${n.url}/transactions/${o.id}`)).state)),
  )
  const { pgDown, doneAt } = chaos
  const mismatches: string[] = []
  let forgotten = 0
  for (const [k, o] of outcomes.entries()) {
    const involved = new Set([homeOf(c.bank, o.from), homeOf(c.bank, o.to)])
    const during =
      doneAt.get(o.id)! > pgDown.from && doneAt.get(o.id)! <= pgDown.to + 2 * CONCURRENCY
    for (const [i, state] of states[k]!.entries()) {
      const url = c.bank.participants[i]!
      const want = !involved.has(i) ? 'unknown' : o.decision === 'commit' ? 'committed' : 'aborted'
      const lostAbort = state === 'unknown' && want === 'aborted'
      // Or whenever the `no` itself says the database was unavailable: a check begun while the
      // server was down can take its time to fail, and finish well after the server is back.
      const unavailable = o.reasons[url]?.startsWith('database unavailable') === true
      const forgottenNo =
        lostAbort && i === PG_PARTICIPANT && o.votes[url] === 'no' && (during || unavailable)
      const neverVoted = lostAbort && o.votes[url] === null
      if (forgottenNo) forgotten += 1
      else if (state !== want && !neverVoted) {
        // With when it finished and why each voted as it did, so that a failure says enough.
        const when = `done ${doneAt.get(o.id)}, PostgreSQL down ${pgDown.from}-${pgDown.to}`
        mismatches.push(
          `${o.id} (${o.decision}, votes ${JSON.stringify(o.votes)}, reasons ` +
            `${JSON.stringify(o.reasons)}, ${when}): participant ${i} is ${state}`,
        )
      }
    }
  }
  return { mismatches, forgotten }
}

/** Money is conserved, no account is overdrawn, and each balance is exactly what the committed
 * transfers make of the opening balance. */
async function expectBalances(bank: Bank, outcomes: Outcome[]): Promise<void> {
  const balances = await readBalances(bank, ACCOUNTS)
  const expected = new Array<number>(ACCOUNTS).fill(INITIAL)
  for (const o of outcomes) {
    if (o.decision !== 'commit') continue
    expected[o.from]! -= o.amount
    expected[o.to]! += o.amount
  }
  expect(balances.reduce((a, b) => a + b, 0)).toBe(ACCOUNTS * INITIAL)
  expect(balances.filter((b) => b < 0)).toEqual([])
  expect(balances).toEqual(expected)
}

/** Nothing is left prepared or locked, in the participants or in PostgreSQL itself. */
async function expectNothingHeld(c: Cluster): Promise<void> {
  for (const n of c.nodes) {
    const status = await getJson(`${n.url}/status`)
    expect({ prepared: status.prepared, locks: status.locks, inDoubt: status.inDoubt }).toEqual({
      prepared: [],
      locks: {},
      inDoubt: [],
    })
  }
  const coordinatorStatus = await getJson(`${c.coordinator.url}/status`)
  expect(coordinatorStatus.counts).toMatchObject({ preparing: 0, delivering: 0 })
  expect(await pgQuery(c.pgStore, 'SELECT gid FROM pg_prepared_xacts')).toEqual([])
  const idleInTransaction = `SELECT pid FROM pg_stat_activity
    WHERE datname = 'bank' AND state LIKE 'idle in transaction%'`
  expect(await pgQuery(c.pgStore, idleInTransaction)).toEqual([]) // no open transaction leaked
}

describe('with a PostgreSQL participant', () => {
  pg = usePgCluster('twophase-bank-pg-')
  test('bank: transfers stay atomic through participant and PostgreSQL crashes', crashTest, 240_000)
})

async function crashTest(): Promise<void> {
  const started = performance.now()
  const c = await startBank()
  expect(await openAccounts(c.bank, ACCOUNTS, INITIAL)).toEqual({ opened: ACCOUNTS, existing: 0 })
  expect(await readBalances(c.bank, ACCOUNTS)).toEqual(new Array(ACCOUNTS).fill(INITIAL))

  const chaos = scheduleCrashes(c)
  const plan = planTransfers(TRANSFERS, ACCOUNTS, mulberry32(SEED), { prefix: 'xfer' })
  const options = { concurrency: CONCURRENCY, onDone: chaos.onDone }
  const outcomes = await runTransfers(c.bank, plan, options)
  const ranMs = performance.now() - started
  await chaos.finished()
  await waitSettled(c.bank, 60_000)
  const settledMs = performance.now() - started

  // Every request got an answer, and the coordinator's log agrees with it.
  expect(outcomes.filter((o) => o.decision === null)).toEqual([])
  expect(await coordinatorMismatches(c, outcomes)).toEqual([])
  const { mismatches, forgotten } = await participantMismatches(c, outcomes, chaos)
  expect(mismatches).toEqual([])
  await expectBalances(c.bank, outcomes)
  await expectNothingHeld(c)

  const { crashes, pgDown } = chaos
  const committed = outcomes.filter((o) => o.decision === 'commit').length
  const aborted = outcomes.filter((o) => o.decision === 'abort').length
  expect(crashes).toHaveLength(7)
  expect(
    crashes.some((line) => line.startsWith(`PostgreSQL server at ${PG_SERVER_KILL_AT} `)),
  ).toBe(true)
  expect(crashes.some((line) => line.startsWith(`participant ${PG_PARTICIPANT} `))).toBe(true)
  expect(committed).toBeGreaterThan(0)
  const reasons = topReasons(outcomes, 5).map(([r, n]) => `${n}× ${r}`)
  const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`
  console.log(
    [
      `bank (seed ${SEED}): ${committed} committed, ${aborted} aborted of ${TRANSFERS} transfers`,
      `${crashes.length} kills: ${crashes.join(', ')}`,
      `${forgotten} no votes forgotten while PostgreSQL was down ` +
        `(done ${pgDown.from}-${pgDown.to})`,
      `transfers took ${seconds(ranMs)}, all settled at ${seconds(settledMs)}`,
      `top abort reasons: ${reasons.join('; ')}`,
    ].join('\n  '),
  )
}

const THREE_TRANSFERS = 400

/** Every involved participant of a committed transfer committed it, none of an aborted one did,
 * and the others never heard of it. */
async function disagreements(bank: Bank, outcomes: Outcome[]): Promise<string[]> {
  const states = await mapLimit(outcomes, 16, (o) =>
    Promise.all(
      bank.participants.map(async (url) => (await getJson(`${url}/transactions/${o.id}`)).state),
    ),
  )
  return outcomes.flatMap((o, k) =>
    states[k]!.flatMap((state: string, i: number) => {
      const involved = homeOf(bank, o.from) === i || homeOf(bank, o.to) === i
      const ok = !involved
        ? state === 'unknown'
        : o.decision === 'commit'
          ? state === 'committed'
          : state !== 'committed'
      return ok ? [] : [`${o.id} (${o.decision}): participant ${i} is ${state}`]
    }),
  )
}

test('bank in three-phase commit: money is conserved, each transfer ran in 3pc', async () => {
  const nodes = await Promise.all([0, 1, 2].map(() => startParticipant(tempDir())))
  const participants = nodes.map((n) => n.url)
  const coordinator = await startCoordinatorService(tempDir(), { participants })
  const bank: Bank = { coordinator: coordinator.url, participants, protocol: '3pc' }
  expect(await openAccounts(bank, ACCOUNTS, INITIAL)).toEqual({ opened: ACCOUNTS, existing: 0 })
  const plan = planTransfers(THREE_TRANSFERS, ACCOUNTS, mulberry32(SEED), { prefix: 'x3' })
  const outcomes = await runTransfers(bank, plan, { concurrency: CONCURRENCY })
  await waitSettled(bank)
  expect(outcomes.filter((o) => o.decision === null)).toEqual([])
  expect(outcomes.filter((o) => o.decision === 'commit').length).toBeGreaterThan(0)
  // The coordinator logged each as the client was told, in three-phase commit, and finished it.
  const logged = await mapLimit(outcomes, 16, (o) =>
    getJson(`${coordinator.url}/transactions/${o.id}`),
  )
  const wrong = logged.filter(
    (l, i) => l.protocol !== '3pc' || l.state !== outcomes[i]!.decision || l.phase !== 'done',
  )
  expect(wrong).toEqual([])
  expect(await disagreements(bank, outcomes)).toEqual([])
  await expectBalances(bank, outcomes)
  for (const url of participants) {
    const status = await getJson(`${url}/status`)
    expect({ prepared: status.prepared, locks: status.locks, inDoubt: status.inDoubt }).toEqual({
      prepared: [],
      locks: {},
      inDoubt: [],
    })
  }
  // The example on the same cluster: its accounts exist, and the total still holds.
  const example = [process.execPath, join(ROOT, 'examples/bank.ts')]
  const args = ['--coordinator', coordinator.url, '--protocol', '3pc', '--transfers', '200']
  const run = await runCommand(example, args)
  expect(run.stderr).toBe('')
  expect(run.code).toBe(0)
  expect(run.stdout).toContain(`${ACCOUNTS} accounts: 0 opened with ${INITIAL} each, 30 existed`)
  expect(run.stdout).toContain('200 transfers of 1-50, 16 at a time, seed 1, in three-phase commit')
  expect(run.stdout).toContain(`total ${ACCOUNTS * INITIAL} = ${ACCOUNTS * INITIAL} expected`)
  expect(await pendingWork(bank)).toEqual([])
  const bad = await runCommand(example, ['--protocol', '4pc'])
  expect(bad).toEqual({
    code: 2,
    stdout: '',
    stderr: 'error: invalid --protocol "4pc": expected 2pc or 3pc\n',
  })
}, 60_000)
