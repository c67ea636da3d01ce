// GET /metrics on every node: Prometheus's text format, or, for the benchmarks that read the
// old counters, their JSON (also at GET /metrics.json).
import type { Hono } from 'hono'
import { wantsJson } from './json-errors.ts'
import type { NodeMetrics } from '../node/metrics.ts'
import { exposition } from '../node/prometheus.ts'

/** The routes; `counters` is the JSON the benchmarks read ({"flushes","requests"}). */
export function useMetrics(app: Hono, metrics: NodeMetrics, counters: () => object): void {
  app.get('/metrics.json', (c) => c.json(counters()))
  app.get('/metrics', async (c) => {
    if (wantsJson(c)) return c.json(counters())
    const { text, type } = await exposition(metrics)
    return c.body(text, 200, { 'content-type': type })
  })
}
