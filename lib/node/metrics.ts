// What a node counts for Prometheus: plain numbers that the shells' reports move
// (lib/node/observe.ts), read into prom-client's registry only when `GET /metrics` is first
// asked for (./prometheus.ts), so that a node that is never scraped neither loads the library
// nor spends more than an increment per event on it.
import type { CoordinatorMessage } from '../core/index.ts'
import type { CoordinatorObserver, ParticipantObserver } from './observe.ts'
import type { CoordinatorNode } from './coordinator-node.ts'
import type { ParticipantNode } from './participant-node.ts'

/** Seconds from a transaction's start (the coordinator) or its yes vote (a participant) to
 * its outcome: from a millisecond on loopback to the prepare timeout. */
export const DURATION_BUCKETS = [
  0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
] as const

/** What the gauges read from the node when scraped. */
export type Sources = {
  flushes: () => number
  inFlight: () => Record<string, number>
  inDoubt: () => number
  locks?: () => number
}

export class NodeMetrics {
  readonly decisions = { commit: 0, abort: 0 }
  heuristic = 0
  readonly messages = new Map<string, number>()
  /** Per bucket of DURATION_BUCKETS (not cumulative), then those past the last one. */
  readonly durations = new Array<number>(DURATION_BUCKETS.length + 1).fill(0)
  durationSum = 0
  durationCount = 0

  constructor(
    readonly role: 'coordinator' | 'participant',
    readonly phases: readonly string[],
    readonly sources: Sources,
  ) {}

  decided(decision: 'commit' | 'abort'): void {
    this.decisions[decision] += 1
  }

  observe(seconds: number): void {
    let i = 0
    while (i < DURATION_BUCKETS.length && seconds > DURATION_BUCKETS[i]!) i += 1
    this.durations[i]! += 1
    this.durationSum += seconds
    this.durationCount += 1
  }

  message(type: string): void {
    this.messages.set(type, (this.messages.get(type) ?? 0) + 1)
  }
}

const COORDINATOR_PHASES = ['preparing', 'precommitting', 'deciding'] as const
const PARTICIPANT_PHASES = ['prepared', 'precommitted', 'preaborted'] as const

/** The coordinator's metrics, fed by its shell's reports. */
export function coordinatorMetrics(node: CoordinatorNode): NodeMetrics {
  const metrics = new NodeMetrics('coordinator', COORDINATOR_PHASES, {
    flushes: () => node.log.flushes,
    inFlight: () => coordinatorPhases(node),
    inDoubt: () => coordinatorPhases(node).deciding ?? 0,
  })
  node.observers.push(coordinatorObserver(metrics, node.ports.now))
  return metrics
}

function coordinatorPhases(node: CoordinatorNode): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const t of node.txns.values()) {
    if (t.phase !== 'done') counts[t.phase] = (counts[t.phase] ?? 0) + 1
  }
  return counts
}

function coordinatorObserver(metrics: NodeMetrics, now: () => number): CoordinatorObserver {
  // When each transaction began, until it is decided (one begun before a restart has none).
  const began = new Map<string, number>()
  return {
    changed(before, after) {
      if (before === undefined) began.set(after.txn, now())
      const decided = (t: typeof after | undefined) => t?.logged === true && t.decision !== null
      if (decided(after) && !decided(before)) {
        metrics.decided(after.decision!)
        const start = began.get(after.txn)
        if (start !== undefined) metrics.observe((now() - start) / 1000)
        began.delete(after.txn)
      }
      const refused = (t: typeof after | undefined) => Object.keys(t?.refusals ?? {}).length > 0
      if (refused(after) && !refused(before)) metrics.heuristic += 1
    },
    sent(_to, message) {
      metrics.message(messageType(message))
    },
  }
}

/** A message's name on the wire: prepare, commit, abort or precommit. */
export function messageType(message: CoordinatorMessage): string {
  if (message.type === 'decide') return message.decision
  return message.type === 'pre' ? 'precommit' : message.type
}

/** A participant's metrics, fed by its shell's and its app's reports. */
export function participantMetrics(node: ParticipantNode): NodeMetrics {
  const metrics = new NodeMetrics('participant', PARTICIPANT_PHASES, {
    flushes: () => node.store.flushes,
    inFlight: () => node.counts(),
    inDoubt: () => node.inDoubt().length,
    locks: () => node.store.locks().size,
  })
  const observer: ParticipantObserver = {
    recorded(record, preparedAt) {
      if (record.state !== 'committed' && record.state !== 'aborted') return
      metrics.decided(record.state === 'committed' ? 'commit' : 'abort')
      if (preparedAt !== null) metrics.observe((node.ports.now() - preparedAt) / 1000)
      if (record.heuristic === true) metrics.heuristic += 1
    },
    received(type) {
      metrics.message(type)
    },
  }
  node.observers.push(observer)
  return metrics
}
