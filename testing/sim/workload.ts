// The simulated workload: bank transfers between accounts spread over the participants, some
// of them doomed (a participant forced to vote no, or an overdraft), all started concurrently.
import type { Json, Op } from '../../lib/core/index.ts'
import type { Faults, Protocol, SimConfig, Workload } from './cluster.ts'
import { random } from './prng.ts'

export const INITIAL_BALANCE = 10

export type Scenario = { participants: number; accounts: number; transfers: number }

/** A cluster, its accounts and its transfers, all derived from `seed`. In three-phase commit
 * (`threePhase`) a cluster has 3-5 participants and every transfer involves all of them: the
 * others each record it (`audit:TXN`), so that its quorums span the whole cluster; on even
 * seeds the coordinator dies for good when the faults end, and the participants must finish
 * every transaction without it. */
export function bankConfig(
  seed: number,
  faults: Faults,
  protocol?: Protocol,
  threePhase = false,
): SimConfig {
  const rng = random(seed ^ 0x5eed)
  const participants = threePhase ? rng.int(3, 5) : rng.int(2, 5)
  const accounts = rng.int(participants, 3 * participants)
  const owner = (a: number) => `p${a % participants}`
  const data: Record<string, Record<string, Json>> = {}
  for (let a = 0; a < accounts; a++) (data[owner(a)] ??= {})[`acct:${a}`] = INITIAL_BALANCE
  const workload: Workload = []
  const transfers = rng.int(3, 12)
  for (let i = 0; i < transfers; i++) {
    const from = rng.int(0, accounts - 1)
    let to = rng.int(0, accounts - 2)
    if (to >= from) to += 1
    const amount = rng.int(1, 2 * INITIAL_BALANCE) // sometimes more than the balance: abort
    const ops: Record<string, Op[]> = {}
    ;(ops[owner(from)] ??= []).push({ op: 'add', key: `acct:${from}`, amount: -amount, min: 0 })
    ;(ops[owner(to)] ??= []).push({ op: 'add', key: `acct:${to}`, amount })
    // Sometimes an auditor reads an account elsewhere: a read-only participant, whose check
    // fails (votes no) when the account has moved since the opening balance.
    const audited = rng.int(0, accounts - 1)
    if (rng.chance(0.3) && ops[owner(audited)] === undefined) {
      ops[owner(audited)] = [{ op: 'check', key: `acct:${audited}`, equals: INITIAL_BALANCE }]
    }
    if (threePhase) {
      for (let p = 0; p < participants; p++) {
        ;(ops[`p${p}`] ??= []).push({ op: 'set', key: `audit:tx${i}`, value: `tx${i}` })
      }
    }
    const no = Object.keys(ops).filter(() => rng.chance(0.1))
    workload.push({ txn: `tx${i}`, at: rng.int(0, 600), ops, no })
  }
  const three = threePhase ? { threePhase, coordinatorDies: seed % 2 === 0 } : {}
  return { seed, participants, faults, workload, data, ...(protocol ? { protocol } : {}), ...three }
}

export function totalOf(config: SimConfig): number {
  return Object.values(config.data)
    .flatMap((accounts) => Object.values(accounts))
    .reduce<number>((sum, v) => sum + (v as number), 0)
}

export const FAULTS: Faults = {
  drop: 0.05,
  duplicate: 0.03,
  crash: 0.002,
  partition: 0.002,
  crashAfterPersist: 0.02,
  diskFail: 0.002,
  diskStall: 0.002,
}

export const NO_FAULTS: Faults = {
  drop: 0,
  duplicate: 0,
  crash: 0,
  partition: 0,
  crashAfterPersist: 0,
  diskFail: 0,
  diskStall: 0,
}
