// A node's metrics (./metrics.ts) in Prometheus's text exposition format, through prom-client:
// its registry, counters and gauges read the node's numbers at each scrape. The library is
// loaded at the first scrape, not at start-up.
import type { Registry } from 'prom-client'
import { DURATION_BUCKETS, type NodeMetrics } from './metrics.ts'

const registries = new WeakMap<NodeMetrics, Promise<Registry>>()

/** The exposition text and its content type. */
export async function exposition(metrics: NodeMetrics): Promise<{ text: string; type: string }> {
  let registry = registries.get(metrics)
  if (registry === undefined) registries.set(metrics, (registry = registryOf(metrics)))
  const r = await registry
  return { text: await r.metrics(), type: r.contentType }
}

async function registryOf(m: NodeMetrics): Promise<Registry> {
  const { Counter, Gauge, Registry } = await import('prom-client')
  const registry = new Registry()
  registry.setDefaultLabels({ role: m.role })
  const registers = [registry]
  /** A counter that shows `read()` (prom-client's counters only go up: by the difference). */
  const counter = (name: string, help: string, labelNames: string[], read: () => Counts) => {
    const shown = new Map<string, number>()
    new Counter({
      ...{ name, help, labelNames, registers },
      collect() {
        for (const [key, value] of read()) {
          const labels = labelNames.length > 0 ? { [labelNames[0]!]: key } : {}
          const delta = value - (shown.get(key) ?? 0)
          if (delta > 0 || !shown.has(key)) this.inc(labels, Math.max(0, delta))
          shown.set(key, Math.max(value, shown.get(key) ?? 0))
        }
      },
    })
  }
  counter(
    'twophase_transactions_total',
    'Transactions decided (coordinator) or whose outcome was recorded (participant)',
    ['decision'],
    () => Object.entries(m.decisions),
  )
  counter(
    'twophase_heuristic_total',
    'Transactions whose outcome an operator forced (a refusal, as seen by a coordinator)',
    [],
    () => [['', m.heuristic]],
  )
  counter('twophase_log_flushes_total', 'Forced writes of the log (group commits)', [], () => [
    ['', m.sources.flushes()],
  ])
  counter(
    'twophase_messages_total',
    'Protocol messages sent (coordinator) or received (participant), by type',
    ['type'],
    () => m.messages,
  )
  registry.registerMetric(durationHistogram(m) as never)
  gauges(m, registers, Gauge)
  return registry
}

type Counts = Iterable<[string, number]>

/** The gauges, read from the node at each scrape. */
function gauges(m: NodeMetrics, registers: Registry[], Gauge: typeof import('prom-client').Gauge) {
  const { sources } = m
  new Gauge({
    ...{ name: 'twophase_transactions_in_flight', labelNames: ['phase'], registers },
    help: 'Transactions not yet finished, by phase',
    collect() {
      const counts = sources.inFlight()
      for (const phase of m.phases) this.set({ phase }, counts[phase] ?? 0)
    },
  })
  new Gauge({
    ...{ name: 'twophase_in_doubt', registers },
    help: 'Participant: prepared past the in-doubt limit; coordinator: decided, not yet acked',
    collect() {
      this.set(sources.inDoubt())
    },
  })
  const locks = sources.locks
  if (locks === undefined) return
  new Gauge({
    ...{ name: 'twophase_locks_held', registers },
    help: 'Keys locked by prepared transactions',
    collect() {
      this.set(locks())
    },
  })
}

/** The duration histogram as prom-client's registry formats one: cumulative buckets (`le`),
 * the sum and the count. Its observations are counted by the node (NodeMetrics.observe), since
 * before the first scrape, which prom-client's Histogram could not take in afterwards. */
function durationHistogram(m: NodeMetrics) {
  const name = 'twophase_transaction_duration_seconds'
  const help = 'From begin (coordinator) or the yes vote (participant) to the durable outcome'
  return {
    name,
    help,
    type: 'histogram',
    get() {
      let cumulative = 0
      const buckets = [...DURATION_BUCKETS, '+Inf'].map((le, i) => {
        cumulative += m.durations[i]!
        return { labels: { le }, value: cumulative, metricName: `${name}_bucket` }
      })
      const sum = { labels: {}, value: m.durationSum, metricName: `${name}_sum` }
      const count = { labels: {}, value: m.durationCount, metricName: `${name}_count` }
      return { name, help, type: 'histogram', values: [...buckets, sum, count], aggregator: 'sum' }
    },
  }
}
