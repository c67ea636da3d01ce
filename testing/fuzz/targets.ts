// The nodes under fuzz, real ones in process: a participant on SQLite in a temp directory, and
// the coordinator service (options as `coordinator.ts serve` sets them) in front of a real
// participant served on a loopback port and an address where nothing listens. Each comes with
// a snapshot of what it shows the world, and a way to wait out the work a request left running.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Hono } from 'hono'
import { createApp } from '../../lib/http/participant-app.ts'
import { createCoordinatorApp } from '../../lib/http/coordinator-app.ts'
import { CoordinatorNode, FileView, ParticipantNode, SqliteStore, httpPorts } from '../../lib.ts'
import type { CoordinatorTxn } from '../../lib.ts'
import type { Answer, Facts, Route } from './oracle.ts'
import { COORDINATOR_ROUTES, PARTICIPANT_ROUTES } from './routes.ts'
import type { FuzzRequest } from './requests.ts'

/** A node's observable state, part by part: text, or a copy of a map of immutable values. */
export type Snapshot = Record<string, string | ReadonlyMap<string, unknown>>

export type Target = {
  name: string
  app: Hono
  routes: readonly Route[]
  facts: Facts
  /** Waits until no earlier request's work is still running, then reads the state. */
  snapshot(): Promise<Snapshot>
  /** Told of every answer: one that started work in the background marks the node busy. */
  answered(request: FuzzRequest, answer: Answer): void
  close(): Promise<void>
}

/** The cluster's secret (null: no authentication): the apps then ask every request for proof
 * of it, and the nodes sign what they send with it. */
export type Secret = string | null

function fileText(path: string): string {
  return existsSync(path) ? readFileSync(path, 'utf8') : '(absent)'
}

/** Throws unless the view `text` is the lines `expected`, each ending in a newline: in that
 * order (state.txt's plain string order of ids), or in any (decision.txt's is the order of the
 * decisions, which the node does not keep). */
function agrees(view: string, text: string, expected: readonly string[], ordered: boolean) {
  const shown = text.split('\n').filter((l) => l !== '')
  const [got, want] = ordered ? [shown, expected] : [shown.sort(), [...expected].sort()]
  if (got.join('\n') === want.join('\n') && (text === '' || text.endsWith('\n'))) return
  const missing = want.filter((l) => !got.includes(l)).slice(0, 5)
  const extra = got.filter((l) => !want.includes(l)).slice(0, 5)
  throw new Error(`${view} disagrees with the node: missing ${missing}, extra ${extra}`)
}

const byTxn = (a: { txn: string }, b: { txn: string }) =>
  a.txn < b.txn ? -1 : a.txn > b.txn ? 1 : 0

/** A participant in `dir` (every vote yes), its in-doubt clock too slow to ever ask anyone. */
export async function participantTarget(dir: string, secret: Secret = null): Promise<Target> {
  const store = new SqliteStore(dir)
  let view: FileView | undefined
  const node = new ParticipantNode(dir, null, {
    store,
    inDoubtAfterMs: 1e12,
    ports: httpPorts({ secret }),
    // The real view, held here so that a snapshot can wait for a write it has scheduled.
    view: (render) => (view = new FileView(join(dir, 'state.txt'), render)),
  })
  await node.start()
  return {
    name: 'participant',
    app: createApp(node, { secret }),
    routes: PARTICIPANT_ROUTES,
    facts: { txnState: (txn) => node.state(txn).state },
    async snapshot() {
      await view!.settle()
      const shown = fileText(join(dir, 'state.txt'))
      const outcomes = [...node.txns.values()].filter(
        (t) => t.state === 'committed' || t.state === 'aborted',
      )
      agrees(
        'state.txt',
        shown,
        outcomes.sort(byTxn).map((t) => `${t.txn}=${t.state}`),
        true,
      )
      return {
        txns: new Map(node.txns),
        locks: new Map(store.locks()),
        'state.txt': shown,
        kv: JSON.stringify(await store.list('', Number.MAX_SAFE_INTEGER)),
        flushes: String(store.flushes),
      }
    },
    answered() {},
    close: () => node.close(),
  }
}

/** A participant answering on a free loopback port, for a coordinator to talk to. */
export async function servedParticipant(dir: string, secret: Secret = null) {
  const node = new ParticipantNode(dir, null, {
    inDoubtAfterMs: 1e12,
    ports: httpPorts({ secret }),
  })
  await node.start()
  const app = createApp(node, { secret })
  const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: app.fetch })
  return {
    url: `http://127.0.0.1:${server.port}`,
    node,
    async close() {
      await server.stop(true)
      await node.close()
    },
  }
}

export type CoordinatorSetup = {
  participants: readonly string[]
  names?: Readonly<Record<string, string>>
}

/** The coordinator service in `dir` with a short prepare timeout, so that a prepare to an
 * unreachable participant ends in 500 ms. Not shorter: a one-phase transaction not decided
 * within it is answered 202 (still preparing), and a live participant stalled by a loaded
 * machine once took 200 ms to vote. */
export async function coordinatorTarget(
  dir: string,
  setup: CoordinatorSetup,
  secret: Secret = null,
): Promise<Target & { node: CoordinatorNode }> {
  const node = new CoordinatorNode({
    dir,
    ports: httpPorts({ secret }),
    timeoutMs: 500,
    requestMs: 200,
    alwaysBatch: true,
    lazyAborts: true,
    onePhase: true,
  })
  await node.start()
  const options = { ...setup, ackWaitMs: 100, credentials: { secret } }
  let busy = false
  return {
    name: `coordinator of ${setup.participants.length} participants`,
    node,
    app: createCoordinatorApp(node, options),
    routes: COORDINATOR_ROUTES,
    facts: {},
    async snapshot() {
      if (busy) await quiet(node, join(dir, 'decision.txt'))
      busy = false
      const shown = fileText(join(dir, 'decision.txt'))
      const decided = [...node.txns.values()].filter((t) => t.decision !== null)
      agrees(
        'decision.txt',
        shown,
        decided.map((t) => `${t.txn}=${t.decision}`),
        false,
      )
      return { txns: new Map(node.txns), 'decision.txt': shown }
    },
    answered(request, answer) {
      if (request.method.toUpperCase() === 'POST' && answer.status === 200) busy = true
    },
    close: async () => node.close(),
  }
}

/** Until every transaction is done and decision.txt shows every decision: a lazy abort's
 * record, and a one-phase decision's (the participant's log holds it already), ride a flush up
 * to 20 ms later. Only the lazy `done` records may still be on their way: they change neither
 * the transactions nor decision.txt. */
async function quiet(node: CoordinatorNode, path: string): Promise<void> {
  const until = performance.now() + 5000
  const txns = () => [...node.txns.values()]
  const settled = (t: CoordinatorTxn) => t.phase === 'done' && (t.decision === null || t.logged)
  for (;;) {
    await node.flushView()
    const lines = fileText(path).split('\n').length - 1
    const decided = txns().filter((t) => t.decision !== null).length
    if (txns().every(settled) && lines === decided) return
    if (performance.now() > until) throw new Error('the coordinator never settled')
    await Bun.sleep(1)
  }
}
