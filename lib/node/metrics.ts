// Prometheus metrics of one node, through prom-client: what `GET /metrics` shows. Counters move
// as the shells report (lib/node/observe.ts); gauges are read from the node when scraped, so
// nothing is counted twice and a scrape costs one pass over the transactions in memory.
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { CoordinatorMessage } from '../core/index.ts'
import type { CoordinatorObserver, ParticipantObserver } from './observe.ts'
import type { CoordinatorNode } from './coordinator-node.ts'
import type { ParticipantNode } from './participant-node.ts'

/** Seconds from a transaction's start (the coordinator) or its yes vote (a participant) to
 * its outcome: from a millisecond on loopback to the prepare timeout. */
const DURATION_BUCKETS = [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
const COORDINATOR_PHASES = ['preparing', 'precommitting', 'deciding'] as const
const PARTICIPANT_PHASES = ['prepared', 'precommitted', 'preaborted'] as const

/** What the gauges read from a node when scraped. */
type Sources = {
  flushes: () => number
  inFlight: () => Record<string, number>
  inDoubt: () => number
  locks?: () => number
}

export class NodeMetrics {
  readonly registry = new Registry()
  readonly transactions: Counter<'decision'>
  readonly duration: Histogram
  readonly heuristic: Counter
  readonly messages: Counter<'type'>

  constructor(role: 'coordinator' | 'participant', phases: readonly string[], sources: Sources) {
    const registers = [this.registry]
    this.registry.setDefaultLabels({ role })
    this.transactions = new Counter({
      name: 'twophase_transactions_total',
      help: 'Transactions decided (coordinator) or whose outcome was recorded (participant)',
      labelNames: ['decision'],
      registers,
    })
    for (const decision of ['commit', 'abort']) this.transactions.inc({ decision }, 0)
    this.duration = new Histogram({
      name: 'twophase_transaction_duration_seconds',
      help: 'From begin (coordinator) or the yes vote (participant) to the durable outcome',
      buckets: DURATION_BUCKETS,
      registers,
    })
    this.heuristic = new Counter({
      name: 'twophase_heuristic_total',
      help: 'Transactions whose outcome an operator forced (a refusal, as seen by a coordinator)',
      registers,
    })
    this.messages = new Counter({
      name: 'twophase_messages_total',
      help: 'Protocol messages sent (coordinator) or received (participant), by type',
      labelNames: ['type'],
      registers,
    })
    gauges(this.registry, phases, sources)
  }

  /** The text exposition format. */
  text(): Promise<string> {
    return this.registry.metrics()
  }

  get contentType(): string {
    return this.registry.contentType
  }
}

/** The metrics read from the node at each scrape. */
function gauges(registry: Registry, phases: readonly string[], sources: Sources): void {
  const registers = [registry]
  let flushed = 0
  new Counter({
    name: 'twophase_log_flushes_total',
    help: 'Forced writes of the log (group commits)',
    registers,
    collect() {
      const now = sources.flushes()
      if (now > flushed) this.inc(now - flushed)
      flushed = Math.max(flushed, now)
    },
  })
  new Gauge({
    name: 'twophase_transactions_in_flight',
    help: 'Transactions not yet finished, by phase',
    labelNames: ['phase'],
    registers,
    collect() {
      const counts = sources.inFlight()
      for (const phase of phases) this.set({ phase }, counts[phase] ?? 0)
    },
  })
  new Gauge({
    name: 'twophase_in_doubt',
    help: 'Participant: prepared past the in-doubt limit; coordinator: decided, not yet acked',
    registers,
    collect() {
      this.set(sources.inDoubt())
    },
  })
  const locks = sources.locks
  if (locks) {
    new Gauge({
      name: 'twophase_locks_held',
      help: 'Keys locked by prepared transactions',
      registers,
      collect() {
        this.set(locks())
      },
    })
  }
}

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
        metrics.transactions.inc({ decision: after.decision! })
        const start = began.get(after.txn)
        if (start !== undefined) metrics.duration.observe((now() - start) / 1000)
        began.delete(after.txn)
      }
      const refused = (t: typeof after | undefined) => Object.keys(t?.refusals ?? {}).length > 0
      if (refused(after) && !refused(before)) metrics.heuristic.inc()
    },
    sent(_to, message) {
      metrics.messages.inc({ type: messageType(message) })
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
      metrics.transactions.inc({ decision: record.state === 'committed' ? 'commit' : 'abort' })
      if (preparedAt !== null) metrics.duration.observe((node.ports.now() - preparedAt) / 1000)
      if (record.heuristic === true) metrics.heuristic.inc()
    },
    received(type) {
      metrics.messages.inc({ type })
    },
  }
  node.observers.push(observer)
  return metrics
}
