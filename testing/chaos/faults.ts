// The seeded fault loop: kills of any node and stalls of participants, at random gaps, until the
// fault phase is over. The same seed draws the same schedule.
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
}

type Fault = { fault: 'kill' | 'stall'; target: ChaosNode | undefined }

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
      const { fault, target } = this.pick(kindDraw, targetDraw)
      if (target === undefined || target.busy || (fault === 'stall' && target.stall !== null)) {
        this.skipped += 1
        continue
      }
      const line = this.apply(fault, target, lengthDraw)
      this.schedule.push(line)
      if (options.verbose) options.log(`  ${line}`)
      if (performance.now() - cluster.faultStart >= nextProgress) {
        options.log(`  ${progress(cluster.clock(), outcomes, cluster.kills, cluster.stalls)}`)
        nextProgress += 5000
      }
    }
  }

  /** The next fault: a forced one while any is left (on a node free for it, else again next
   * time), then 60% a kill of any node, 40% a stall of a participant. */
  private pick(kindDraw: number, targetDraw: number): Fault {
    const nodes = this.cluster.nodes
    const kind = this.forced.shift()
    if (kind !== undefined) {
      const pool = free(kind === 'kill-coordinator' ? [this.cluster.coordinator] : nodes.slice(1))
      const target = pool[Math.floor(targetDraw * pool.length)]
      if (target === undefined) this.forced.unshift(kind) // try again next time
      return { fault: kind === 'stall' ? 'stall' : 'kill', target }
    }
    if (kindDraw < 0.6)
      return { fault: 'kill', target: nodes[Math.floor(targetDraw * nodes.length)]! }
    return { fault: 'stall', target: nodes[1 + Math.floor(targetDraw * (nodes.length - 1))]! }
  }

  /** Does the fault and returns its line for the schedule. */
  private apply(fault: 'kill' | 'stall', target: ChaosNode, lengthDraw: number): string {
    const clock = this.cluster.clock()
    if (fault === 'kill') {
      const downMs = Math.round(lengthDraw * 400)
      this.cluster.kill(target, downMs)
      return `${clock}  kill ${target.name}, restart after ${downMs} ms`
    }
    const ms = Math.round(100 + lengthDraw * 1400)
    this.cluster.stall(target, ms)
    return `${clock}  stall ${target.name} for ${ms} ms`
  }
}

const free = (list: ChaosNode[]) => list.filter((n) => !n.busy && n.stall === null)
