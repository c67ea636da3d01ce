// The bench's --in-process run: what the nodes' own code costs a transaction. The coordinator
// service's app and three participants' apps run in this one process, each with its SQLite
// files in the bench's temp directory. A batch the coordinator sends is handed, as the string a
// channel carries, to the participant's own frame handler (the one its channel's frames reach),
// and the answer comes back the same way; a client's POST /transactions goes to the
// coordinator's app as a Request. Nothing crosses a socket, so the CPU per transaction is the
// code's (the cores, JSON, SQLite, Hono, the views) plus the fsyncs where that directory is on a
// disk (TMPDIR=/dev/shm: none): the floor under what the processes of `bun run bench` pay, and
// a steadier figure to measure a change by (runs spread by about a tenth, the processes' by a
// fifth and more).
import type { ServerWebSocket } from 'bun'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { channelSocket } from '../../lib/http/channel.ts'
import { createCoordinatorApp } from '../../lib/http/coordinator-app.ts'
import { createApp } from '../../lib/http/participant-app.ts'
import { CoordinatorNode } from '../../lib/node/coordinator-node.ts'
import { ParticipantNode } from '../../lib/node/participant-node.ts'
import { httpPorts, type Ports, type WireReply } from '../../lib/node/ports.ts'
import { SqliteStore } from '../../lib/store/sqlite-store.ts'
import { COLUMNS, bodyOf, round, type Settings } from './level.ts'
import { table } from './table.ts'

export type InProcessRow = {
  concurrency: number
  transactions: number
  perSecond: number
  p50: number
  p99: number
  committed: number
  /** Forced writes (SQLite commits) per transaction: the coordinator's, each participant's. */
  coordinatorWrites: number
  participantWrites: number
  /** Batches sent to the participants per transaction. */
  requests: number
  /** CPU microseconds (user + system, every thread of this process) per transaction. */
  cpuMicros: number
}

type Frames = (body: string) => Promise<string>
type InProcess = {
  handle: (request: Request) => Response | Promise<Response>
  coordinator: CoordinatorNode
  stores: SqliteStore[]
  close: () => Promise<void>
}

/** `to`'s frames, answered by the frame handler of its app (lib/http/channel.ts). */
function framesOf(app: ReturnType<typeof createApp>): Frames {
  const { message } = channelSocket(app).websocket
  if (message === undefined) throw new Error('assertion: a channel without a message handler')
  const waiting = new Map<string, (answer: string) => void>()
  let next = 0
  const socket = {
    send(answer: string) {
      const id = answer.slice(0, answer.indexOf('\n'))
      waiting.get(id)?.(answer)
      waiting.delete(id)
    },
    close(code: number, reason: string) {
      throw new Error(`the participant closed its channel: ${code} ${reason}`)
    },
  } as unknown as ServerWebSocket<unknown>
  return (body) => {
    const id = String(++next)
    const answer = new Promise<string>((resolve) => waiting.set(id, resolve))
    void message(socket, `${id}\n\n${body}`)
    return answer
  }
}

/** Bun's ports, but a POST /batch to a participant here is a frame handed over in memory, its
 * answer read as lib/node/channel.ts reads one. */
function portsTo(frames: Map<string, Frames>): Ports {
  const real = httpPorts()
  const request: Ports['request'] = async (method, url, body, timeoutMs) => {
    const to = frames.get(url.slice(0, -'/batch'.length))
    if (method !== 'POST' || !url.endsWith('/batch') || to === undefined) {
      return real.request(method, url, body, timeoutMs)
    }
    const answer = await to(JSON.stringify(body))
    const first = answer.indexOf('\n')
    const second = answer.indexOf('\n', first + 1)
    const reply: WireReply = { status: Number(answer.slice(first + 1, second)), body: null }
    reply.body = JSON.parse(answer.slice(second + 1))
    return reply
  }
  return { ...real, request }
}

/** The coordinator service and three participants, in this process, under `s.root`. */
async function startInProcess(s: Settings): Promise<InProcess> {
  const urls = ['http://p0.invalid', 'http://p1.invalid', 'http://p2.invalid']
  const frames = new Map<string, Frames>()
  const participants: ParticipantNode[] = []
  const stores: SqliteStore[] = []
  for (const [i, url] of urls.entries()) {
    const dir = join(s.root, `p${i}`)
    mkdirSync(dir, { recursive: true })
    const store = new SqliteStore(dir)
    const node = new ParticipantNode(dir, null, { store })
    await node.start()
    frames.set(url, framesOf(createApp(node)))
    participants.push(node)
    stores.push(store)
  }
  const dir = join(s.root, 'coordinator')
  mkdirSync(dir, { recursive: true })
  // The service's options (coordinator.ts serve).
  const service = { alwaysBatch: true, lazyAborts: true, onePhase: true }
  const selfUrl = 'http://coordinator.invalid'
  const coordinator = new CoordinatorNode({ dir, ports: portsTo(frames), selfUrl, ...service })
  const app = createCoordinatorApp(coordinator, { participants: urls, ackWaitMs: s.ackWait })
  await coordinator.start()
  const close = async () => {
    await coordinator.close()
    await Promise.all(participants.map((p) => p.close()))
  }
  return { handle: (request) => app.fetch(request), coordinator, stores, close }
}

/** `total` transactions from `concurrency` clients in a closed loop; their latencies (ms). */
async function drive(cluster: InProcess, s: Settings, concurrency: number, total: number) {
  const run = `c${concurrency}-${Date.now().toString(36)}`
  const latencies: number[] = []
  let next = 0
  let committed = 0
  const client = async () => {
    for (let i = next++; i < total; i = next++) {
      const started = performance.now()
      const body = bodyOf(s, i, run)
      // With its length, as a client's request reaches Bun's server (wrk's does): without it,
      // the body-limit middleware counts the body through a stream and builds a new Request.
      const length = String(Buffer.byteLength(body))
      const request = new Request('http://coordinator.invalid/transactions', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': length },
        body,
      })
      const reply = (await (await cluster.handle(request)).json()) as { decision?: string }
      latencies.push(performance.now() - started)
      if (reply.decision === 'commit') committed += 1
    }
  }
  await Promise.all(Array.from({ length: concurrency }, client))
  return { latencies: latencies.sort((a, b) => a - b), committed }
}

/** Waits until the coordinator's GET /status lists nothing undecided or undelivered: with
 * `--ack-wait 0` the clients are answered before the commits are delivered, and those are part
 * of the level's cost (and must be through before the nodes close). */
async function idle(cluster: InProcess) {
  const deadline = Date.now() + 60_000
  for (;;) {
    const status = await cluster.handle(new Request('http://coordinator.invalid/status'))
    const { counts } = (await status.json()) as {
      counts: { preparing: number; delivering: number }
    }
    if (counts.preparing === 0 && counts.delivering === 0) return
    if (Date.now() > deadline) throw new Error(`still busy after 60 s: ${JSON.stringify(counts)}`)
    await Bun.sleep(1)
  }
}

/** One measured level: `s.count` transactions at `concurrency`. */
async function inProcessLevel(
  cluster: InProcess,
  s: Settings,
  concurrency: number,
): Promise<InProcessRow> {
  const flushes = () => [cluster.coordinator.log.flushes, ...cluster.stores.map((p) => p.flushes)]
  const before = { flushes: flushes(), requests: cluster.coordinator.requests }
  const cpu = process.cpuUsage()
  const started = performance.now()
  const { latencies, committed } = await drive(cluster, s, concurrency, s.count)
  const seconds = (performance.now() - started) / 1000
  await idle(cluster)
  const used = process.cpuUsage(cpu)
  const after = flushes()
  const per = (n: number, digits = 3) => round(n / s.count, digits)
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * s.count))]!
  const participantFlushes = after
    .slice(1)
    .reduce((sum, n, i) => sum + n - before.flushes[i + 1]!, 0)
  return {
    concurrency,
    transactions: s.count,
    perSecond: Math.round(s.count / seconds),
    p50: round(at(0.5)),
    p99: round(at(0.99)),
    committed,
    coordinatorWrites: per(after[0]! - before.flushes[0]!),
    participantWrites: per(participantFlushes / cluster.stores.length),
    requests: per(cluster.coordinator.requests - before.requests, 2),
    cpuMicros: Math.round((used.user + used.system) / s.count),
  }
}

/** `s.warmup` transactions at 64 (unmeasured), then each level in turn. */
export async function inProcessRuns(s: Settings, levels: number[]): Promise<InProcessRow[]> {
  const cluster = await startInProcess(s)
  try {
    if (s.warmup > 0) await drive(cluster, s, 64, s.warmup)
    await idle(cluster)
    const rows: InProcessRow[] = []
    for (const concurrency of levels) rows.push(await inProcessLevel(cluster, s, concurrency))
    return rows
  } finally {
    await cluster.close()
  }
}

/** The rows as table lines (two lines of headings first), then what the CPU column means. */
export function inProcessLines(rows: InProcessRow[]): string[] {
  // The processes' table, without the max and with one CPU column for the one process.
  const columns = COLUMNS.filter((c) => c.label !== 'max ms' && c.group !== 'CPU µs/txn')
  columns.push({ label: 'CPU µs/txn', width: 10 })
  const cells = rows.map((r) =>
    [r.concurrency, r.perSecond, r.p50, r.p99, r.committed]
      .concat([r.coordinatorWrites, r.participantWrites, r.requests, r.cpuMicros])
      .map(String),
  )
  return [
    ...table(columns, cells),
    'CPU µs/txn: CPU time per transaction of this one process (every node, every thread)',
  ]
}
