// The seeded fault loop: kills of any node and stalls of participants, at random gaps, until the
// fault phase is over; on a shared log, stalls of coordinators too (some past the lease, so that
// another takes it over and fences the stalled one), and crashes of a throwaway PostgreSQL
// server. The same seed draws the same schedule.
import { mulberry32 } from '../bank.ts'
import type { Cluster } from './cluster.ts'
import { progress } from './report.ts'
import type { ChaosNode, ClientOutcome } from './types.ts'

export type FaultOptions = {
  seed: number
  seconds: number
  minGapMs: number
  maxGapMs: number
  verbose: boolean
  log: (line: string) => void
  aborted: () => boolean
  leaseMs: number
}

type Fault =
  | { fault: 'kill' | 'stall'; target: ChaosNode | undefined; long?: boolean }
  | { fault: 'crash'; target: 'postgres' | undefined }

export class FaultLoop {
  /** Every fault, with the time since the fault phase began. */
  readonly schedule: string[] = []
  /** Faults drawn for a node that was already down or stalled. */
  skipped = 0
  private readonly random: () => number
  /** The first faults: one of each kind, so every run has all three whatever the seed. */
  private readonly forced = ['kill-coordinator', 'kill-participant', 'stall']

  constructor(
    private readonly cluster: Cluster,
    private readonly options: FaultOptions,
  ) {
    this.random = mulberry32(options.seed ^ 0x9e3779b9)
    // The seed picks the order of the forced faults.
    for (let i = this.forced.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1))
      ;[this.forced[i], this.forced[j]] = [this.forced[j]!, this.forced[i]!]
    }
  }

  /** Draws and does faults until `seconds` after the cluster's fault start, an error of the run
   * or an interrupt; logs progress every 5 s. */
  async run(outcomes: readonly ClientOutcome[]): Promise<void> {
    const { cluster, options } = this
    const deadline = cluster.faultStart + options.seconds * 1000
    // On a shared log: first a coordinator stalled past its lease while all is calm (so that
    // another takes it over, and it is fenced when it wakes), last a crash of the database
    // (which would make every lease run out, and delay takeovers by a lease).
    if (cluster.logDb) this.forced.unshift('long-stall-coordinator')
    if (cluster.logDb?.server) this.forced.push('crash-postgres')
    let nextProgress = 5000
    while (!options.aborted()) {
      // Every draw is made whatever happens next, so the schedule depends on the seed only.
      const gap = options.minGapMs + this.random() * (options.maxGapMs - options.minGapMs)
      const [kindDraw, targetDraw, lengthDraw] = [this.random(), this.random(), this.random()]
      if (cluster.errors.length > 0) break
      if (performance.now() + gap >= deadline) {
        await Bun.sleep(Math.max(0, deadline - performance.now()))
        break
      }
      await Bun.sleep(gap)
      const fault = this.pick(kindDraw, targetDraw)
      if (!this.ready(fault)) {
        this.skipped += 1
        continue
      }
      const line = this.apply(fault, lengthDraw)
      this.schedule.push(line)
      if (options.verbose) options.log(`  ${line}`)
      if (performance.now() - cluster.faultStart >= nextProgress) {
        options.log(`  ${progress(cluster.clock(), outcomes, cluster.kills, cluster.stalls)}`)
        nextProgress += 5000
      }
    }
  }

  /** Whether the fault can be done now: its target up and free (on a shared log, not stalled
   * either: a kill would cut short a stall past the lease). */
  private ready(f: Fault): boolean {
    if (f.fault === 'crash') return f.target !== undefined && !this.cluster.logDb!.busy
    if (f.target === undefined || f.target.busy || f.target.proc === null) return false
    return f.target.stall === null || (f.fault === 'kill' && this.cluster.logDb === null)
  }

  /** The next fault: a forced one while any is left (on a node free for it, else again next
   * time), then 60% a kill of any node, 40% a stall of a participant; on a shared log a stall
   * of any node, and 5% a crash of a throwaway PostgreSQL server instead of a kill. */
  private pick(kindDraw: number, targetDraw: number): Fault {
    const { coordinators, participants, logDb } = this.cluster
    const nodes = this.cluster.nodes
    const kind = this.forced.shift()
    if (kind === 'crash-postgres') return { fault: 'crash', target: 'postgres' }
    if (kind !== undefined) {
      const pool = free(kind.endsWith('coordinator') ? coordinators : participants)
      const target = pool[Math.floor(targetDraw * pool.length)]
      if (target === undefined) this.forced.unshift(kind) // try again next time
      const long = kind === 'long-stall-coordinator'
      return { fault: kind.startsWith('kill') ? 'kill' : 'stall', target, long }
    }
    if (logDb?.server && kindDraw < 0.05) return { fault: 'crash', target: 'postgres' }
    const pick = (list: ChaosNode[]) => list[Math.floor(targetDraw * list.length)]!
    if (kindDraw < 0.6) return { fault: 'kill', target: pick(nodes) }
    return { fault: 'stall', target: pick(logDb ? nodes : participants) }
  }

  /** Does the fault and returns its line for the schedule. A coordinator on a shared log stays
   * down or stalled past its lease 30% of the time: another takes it over. */
  private apply(f: Fault, lengthDraw: number): string {
    const clock = this.cluster.clock()
    const lease = this.options.leaseMs
    if (f.fault === 'crash') {
      const downMs = Math.round(lengthDraw * 1000)
      this.cluster.crashLogDb(downMs)
      return `${clock}  crash postgres, start after ${downMs} ms`
    }
    const target = f.target!
    const leased = this.cluster.logDb !== null && this.cluster.coordinators.includes(target)
    const past = leased && (f.long || lengthDraw >= 0.7)
    if (f.fault === 'kill') {
      const downMs = Math.round(past ? lease * (1 + (lengthDraw - 0.7) / 0.3) : lengthDraw * 400)
      this.cluster.kill(target, Math.max(0, downMs))
      return `${clock}  kill ${target.name}, restart after ${downMs} ms`
    }
    // Past the lease: 2 to 3 leases (it may have been renewed just before, and the others must
    // notice: they look every third of a lease).
    const ms = Math.round(
      past ? lease * (2 + lengthDraw) : leased ? 100 + lengthDraw * 600 : 100 + lengthDraw * 1400,
    )
    this.cluster.stall(target, ms)
    return `${clock}  stall ${target.name} for ${ms} ms${past ? ' (past its lease)' : ''}`
  }
}

const free = (list: ChaosNode[]) => list.filter((n) => !n.busy && n.stall === null && n.proc)
