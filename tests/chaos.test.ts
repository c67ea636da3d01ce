// The chaos run (scripts/chaos.ts), short: real processes, the bank's transfers through the
// coordinator service, and for 7 seconds SIGKILLs and restarts of any node (the coordinator too)
// and SIGSTOP stalls of participants; then every invariant must hold, from the nodes' own APIs
// and files. The first three faults are always one coordinator kill, one participant kill and
// one stall, so each kind happens whatever the seed. A second, shorter run does it all on a
// secure cluster: a secret, client tokens and mutual TLS on every node, at every restart. A third
// runs three coordinators on one log in a throwaway PostgreSQL: coordinators stalled too (one
// past its lease, so it is taken over and fenced), the server crashed and restarted, and the
// log's own tables checked.
import { expect, test } from 'bun:test'
import { formatReport } from '../testing/chaos/report.ts'
import { runChaos } from '../testing/chaos/run.ts'
import type { Report } from '../testing/chaos/types.ts'

const SEED = Number(process.env.CHAOS_SEED ?? 20_240_601)

const INVARIANTS = [
  'total conserved',
  'no negative balance',
  'balances match the committed transfers',
  "clients' outcomes are the coordinator's",
  'participants agree with the coordinator',
  'decision.txt agrees with the coordinator',
  'state.txt agrees with each participant',
  'nothing prepared or locked',
]

const SHARED_INVARIANTS = [
  'total conserved',
  'no negative balance',
  'balances match the committed transfers',
  "clients' outcomes are the log's",
  'participants agree with the log',
  'every coordinator answers the same',
  'each decision.txt agrees with the log',
  'state.txt agrees with each participant',
  'nothing prepared or locked',
  'one decision per transaction in the log',
  'no lease overlap in the log',
]

const sum = (counts: Record<string, number>, prefix: string) =>
  Object.entries(counts)
    .filter(([name]) => name.startsWith(prefix))
    .reduce((a, [, n]) => a + n, 0)

/** Every invariant held, every kind of fault happened, and nothing was left behind. */
function expectPassed(report: Report, invariants = INVARIANTS): void {
  expect(report.errors).toEqual([])
  expect(report.invariants.map((i) => i.name)).toEqual(invariants)
  expect(report.invariants.filter((i) => !i.ok)).toEqual([])
  expect(report.ok).toBe(true)

  expect(sum(report.kills, 'coordinator')).toBeGreaterThanOrEqual(1)
  expect(sum(report.kills, 'participant')).toBeGreaterThanOrEqual(1)
  expect(sum(report.stalls, 'participant')).toBeGreaterThanOrEqual(1)
  expect(report.transfers.committed).toBeGreaterThan(0)
  expect(report.transfers.lost).toBe(0)
  // Everything it started is gone, and its directory removed.
  expect(report.processes.left).toBe(0)
  expect(report.dir).toBeNull()
}

test('chaos: kills of any node and stalls of participants break no invariant', async () => {
  const report = await runChaos({ seconds: 7, seed: SEED, accounts: 30, concurrency: 16 })
  console.log(formatReport(report).join('\n'))
  expect(report.secure).toBe(false)
  expectPassed(report)
}, 120_000)

test('chaos, secure: with a secret, client tokens and mutual TLS, nothing breaks', async () => {
  const report = await runChaos({ seconds: 3, seed: SEED + 1, concurrency: 16, secure: true })
  console.log(formatReport(report).join('\n'))
  expect(report.secure).toBe(true)
  // A node restarted without its flags would be refused by the others (or refuse them), and
  // an invariant would break.
  expectPassed(report)
}, 120_000)

const THREE = 'chaos, three coordinators on one PostgreSQL log: takeovers and fencing break nothing'

test(
  THREE,
  async () => {
    const report = await runChaos({ seconds: 8, seed: SEED + 2, coordinators: 3, concurrency: 12 })
    console.log(formatReport(report).join('\n'))
    expectPassed(report, SHARED_INVARIANTS)
    expect(report.shared).toMatchObject({ coordinators: 3, logDb: 'throwaway', leaseMs: 1000 })
    // The forced faults: a coordinator stalled past its lease, a crash of the database server.
    expect(report.kills.postgres).toBeGreaterThanOrEqual(1)
    expect(sum(report.stalls, 'coordinator')).toBeGreaterThanOrEqual(1)
    expect(report.schedule.some((line) => line.endsWith('(past its lease)'))).toBe(true)
    expect(report.shared!.takeovers).toBeGreaterThanOrEqual(1)
    expect(report.shared!.fencings).toBeGreaterThanOrEqual(1)
  },
  180_000,
)
