// Running one seed, and reporting a failure so that it can be replayed.
import { createSim, type Faults, type Protocol } from './cluster.ts'
import { SimViolation } from './invariants.ts'
import { SharedSim, type SharedCounts } from './shared-cluster.ts'
import { FAULTS, bankConfig, totalOf } from './workload.ts'

export type Counts = {
  crashes: number
  drops: number
  duplicates: number
  partitions: number
  diskFaults: number
  stalls: number
  failedWrites: number
  steps: number
}

export type SeedResult = {
  seed: number
  ok: boolean
  violation: string | null
  trace: string[]
  counts: Counts
  decisions: Record<string, string>
  /** Transactions on which every participant durably voted yes. */
  allYes: string[]
  /** Transactions folded by a checkpoint, on the coordinator and on every participant. */
  folded: number
  /** Several coordinators on one shared log: what happened to their leases. */
  shared?: SharedCounts
}

export type RunOptions = {
  faults?: Faults
  protocol?: Protocol
  fullTrace?: boolean
  threePhase?: boolean
  /** 2 or 3: that many coordinators on one shared log (./shared-cluster.ts). */
  coordinators?: number
}

export async function runSeed(seed: number, options: RunOptions = {}): Promise<SeedResult> {
  const faults = options.faults ?? FAULTS
  const config = bankConfig(seed, faults, options.protocol, options.threePhase ?? false)
  const fullTrace = options.fullTrace ?? false
  const sim = options.coordinators
    ? new SharedSim({ ...config, fullTrace, coordinators: options.coordinators })
    : createSim({ ...config, fullTrace })
  let violation: string | null = null
  try {
    const quiescent = await sim.run()
    sim.invariants.atEnd(quiescent, totalOf(config))
    if (sim instanceof SharedSim) sim.clientsAgree()
  } catch (error) {
    if (!(error instanceof SimViolation)) throw error
    violation = error.message
  }
  const records = sim.loggedRecords()
  const decisions: Record<string, string> = {}
  for (const r of records) if (r.type === 'decision') decisions[r.txn] = r.decision
  const allYes: string[] = []
  for (const r of records) {
    // A folded transaction's one record is its decision, which names the participants.
    const participants = r.type === 'done' ? undefined : r.participants
    if (participants === undefined) continue
    const yes = (url: string) =>
      sim.participant(url).durable.records.some((x) => x.txn === r.txn && x.vote === 'yes')
    if (participants.every(yes) && !allYes.includes(r.txn)) allYes.push(r.txn)
  }
  const counts = { ...sim.counts, ...sim.net.counts, ...sim.disk }
  const folded = [sim.coordinator.folded, ...sim.participants.map((p) => p.durable.folded)]
    .map((set) => set.size)
    .reduce((a, b) => a + b, 0)
  const { trace } = sim
  const shared = sim instanceof SharedSim ? { shared: sim.sharedCounts() } : {}
  const ok = violation === null
  return { seed, ok, violation, trace, counts, decisions, allYes, folded, ...shared }
}

/** What a failing seed prints: the property, the replay command and the events before it. */
export function report(
  result: SeedResult,
  variant = '',
  threePhase = false,
  coordinators = 0,
): string {
  const several = coordinators > 0 ? ` --coordinators ${coordinators}` : ''
  const flag =
    (threePhase ? ' --protocol 3pc' : '') + several + (variant ? ` --variant ${variant}` : '')
  return [
    `seed ${result.seed} violated ${result.violation}`,
    `replay: bun scripts/simulate.ts --seed ${result.seed} --trace${flag}`,
    ...result.trace.slice(-40),
  ].join('\n')
}
