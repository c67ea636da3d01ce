// The coordinator's live dashboard: the page at GET / and uPlot under /assets (open: they hold
// no data), then, behind authentication like the rest of the API, GET /events (SSE) and each
// recent transaction's timeline at GET /transactions/:id/timeline.
import type { Hono } from 'hono'
import uplotJs from 'uplot/dist/uPlot.iife.min.js' with { type: 'text' }
import uplotCss from 'uplot/dist/uPlot.min.css' with { type: 'text' }
import type { CoordinatorNode } from '../../node/coordinator-node.ts'
import { Timeline } from '../../node/timeline.ts'
import { isTxnId, txnIdError } from '../../core/index.ts'
import { httpError } from '../json-errors.ts'
import { EventStream } from './events.ts'
import { PAGE } from './page.ts'
import { Summaries } from './summary.ts'

/** The page and its assets: installed before authentication, which they do not need. */
export function useDashboardPage(app: Hono): void {
  app.get('/', (c) => c.html(PAGE))
  const cache = { 'cache-control': 'max-age=3600' }
  app.get('/assets/uPlot.iife.min.js', (c) =>
    c.body(uplotJs, 200, { 'content-type': 'text/javascript; charset=utf-8', ...cache }),
  )
  app.get('/assets/uPlot.min.css', (c) =>
    c.body(uplotCss, 200, { 'content-type': 'text/css; charset=utf-8', ...cache }),
  )
}

/** The data: the event stream and the timelines, recorded from now on. */
export function useDashboardData(
  app: Hono,
  node: CoordinatorNode,
  participants: readonly string[],
): void {
  const timeline = new Timeline(node.ports.now)
  node.observers.push(timeline)
  const events = new EventStream(new Summaries(node, timeline, participants), node.ports.every)
  app.get('/events', (c) => events.respond(c))
  app.get('/transactions/:id/timeline', (c) => {
    const id = c.req.param('id')
    if (!isTxnId(id)) throw httpError(400, txnIdError(id))
    const found = timeline.of(id)
    if (found === undefined) {
      return c.json({ error: `no timeline of ${id}: only the last transactions have one` }, 404)
    }
    return c.json(found)
  })
}
