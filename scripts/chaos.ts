// A chaos run of real processes: three participants (SQLite) and a coordinator service on free
// loopback ports in a temp directory, the bank's random transfers through the coordinator's HTTP
// API, and meanwhile a seeded loop that SIGKILLs and restarts any node (the coordinator too) and
// stalls participants with SIGSTOP/SIGCONT. Once the faults stop and everything is quiet, the
// nodes' own APIs and files are checked: money conserved, no negative balance, one outcome per
// transaction everywhere, decision.txt and state.txt agreeing with the APIs, nothing left locked.
//   bun scripts/chaos.ts [--seconds 30] [--seed N] [--accounts 30] [--concurrency 16] [--json]
//     [--verbose] [--keep]
// Exit status 0 when every invariant holds, 1 when one does not (or the run broke), 2 for usage.
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import type { Subprocess } from 'bun'
import {
  accountKey,
  homeOf,
  mulberry32,
  openAccounts,
  pendingWork,
  planTransfers,
  readBalances,
  type Bank,
  type Transfer,
} from '../examples/bank.ts'
import { COORDINATOR, PARTICIPANT, cleanEnv } from './nodes.ts'

export type ChaosOptions = {
  /** Length of the fault phase, in seconds. */
  seconds?: number
  seed?: number
  accounts?: number
  concurrency?: number
  initial?: number
  /** The coordinator's prepare timeout (`--timeout`). */
  timeoutMs?: number
  /** The participants' `--in-doubt-after`. */
  inDoubtAfterMs?: number
  /** Pause between two faults: from `minGapMs` to `maxGapMs`. */
  minGapMs?: number
  maxGapMs?: number
  /** How long to wait for quiescence after the faults before giving up. */
  settleMs?: number
  /** Progress lines; none when absent. */
  log?: (line: string) => void
  /** Also log every fault as it happens. */
  verbose?: boolean
  /** Keep the temp directory: always, never, or only when the run fails (default). */
  keep?: 'always' | 'never' | 'on-failure'
  signal?: AbortSignal
}

export type Invariant = { name: string; ok: boolean; summary: string; details: string[] }

export type Report = {
  ok: boolean
  seed: number
  seconds: number
  accounts: number
  concurrency: number
  transfers: {
    total: number
    committed: number
    aborted: number
    /** Requests that failed (coordinator down) and were retried with the same id. */
    retried: number
    /** Failed requests whose id the coordinator never recorded: aborted (presumed abort). */
    unrecorded: number
    /** Requests that never got an outcome, even after retrying. */
    lost: number
  }
  kills: Record<string, number>
  stalls: Record<string, number>
  /** Faults the schedule drew for a node that was already down or stalled. */
  skipped: number
  /** Every fault, with the time since the fault phase began. */
  schedule: string[]
  invariants: Invariant[]
  /** Lines the nodes wrote on stderr (errors they logged), first few of them. */
  nodeErrors: { count: number; first: string[] }
  /** Problems of the run itself (a node that would not restart, a timeout), not invariants. */
  errors: string[]
  timings: { startMs: number; faultMs: number; drainMs: number; settleMs: number; checkMs: number }
  totalMs: number
  dir: string | null
  processes: { started: number; left: number }
}

type NodeName = string

type ChaosNode = {
  name: NodeName
  dir: string
  port: number
  url: string
  argv: (port: number) => string[]
  env: (port: number) => Record<string, string>
  proc: Subprocess<'ignore', 'pipe', 'pipe'> | null
  /** SIGSTOPped, and by which stall (so a late SIGCONT of an old stall does nothing). */
  stall: number | null
  /** Being killed and restarted. */
  busy: boolean
  starts: number
}

type ClientOutcome = Transfer & {
  decision: 'commit' | 'abort' | null
  how: 'reply' | 'retried' | 'unrecorded' | 'lost'
  error?: string
}

const RETRY_LIMIT_MS = 120_000

/** Runs one chaos experiment and returns what it found; never leaves a process behind. */
export async function runChaos(options: ChaosOptions = {}): Promise<Report> {
  const seed = options.seed ?? 1
  const seconds = options.seconds ?? 30
  const accounts = options.accounts ?? 30
  const concurrency = options.concurrency ?? 16
  const initial = options.initial ?? 100
  const minGapMs = options.minGapMs ?? 100
  const maxGapMs = options.maxGapMs ?? 600
  const log = options.log ?? (() => {})
  const started = performance.now()
  const root = mkdtempSync(join(tmpdir(), 'twophase-chaos-'))
  mkdirSync(join(root, 'logs'))

  const procs = new Set<Subprocess>()
  const nodes: ChaosNode[] = []
  const timers = new Set<Timer>()
  const pending = new Set<Promise<void>>()
  const errors: string[] = []
  const schedule: string[] = []
  const kills: Record<string, number> = {}
  const stalls: Record<string, number> = {}
  let stopping = false
  let faultStart = started // the clock counts from the run's start until the faults begin
  const clock = () => `${((performance.now() - faultStart) / 1000).toFixed(2)} s`
  const aborted = () => options.signal?.aborted === true
  // The clients: told to stop taking new transfers, or (on an error) to give up retrying too.
  let stopWorkload = false
  let abandon = false
  const giveUp = () => abandon || aborted()
  let clients: Promise<unknown> = Promise.resolve()

  // The last resort: whatever happens, no node outlives this process.
  const onExit = () => {
    for (const proc of procs) {
      try {
        proc.kill('SIGCONT')
        proc.kill('SIGKILL')
      } catch {}
    }
  }
  process.on('exit', onExit)

  const launch = async (node: ChaosNode): Promise<void> => {
    for (let attempt = 1; ; attempt++) {
      const proc = Bun.spawn(node.argv(node.port), {
        cwd: node.dir,
        env: { ...cleanEnv(), ...node.env(node.port) },
        stdin: 'ignore',
        stdout: 'pipe',
        stderr: 'pipe',
      })
      procs.add(proc)
      void proc.exited.then(() => procs.delete(proc))
      node.starts += 1
      const logFile = join(root, 'logs', `${node.name}.log`)
      appendLine(
        logFile,
        `--- start ${node.starts} (pid ${proc.pid}) at ${clock()}, ${new Date().toISOString()}\n`,
      )
      try {
        const url = await listening(proc, logFile, 20_000)
        node.proc = proc
        node.port = Number(new URL(url).port)
        node.url = url
        return
      } catch (error) {
        proc.kill('SIGKILL')
        await proc.exited
        if (attempt >= 5 || stopping)
          throw new Error(`${node.name} would not start: ${message(error)}`)
        await Bun.sleep(100 * attempt)
      }
    }
  }

  const killAndRestart = async (node: ChaosNode, downMs: number): Promise<void> => {
    node.busy = true
    try {
      const proc = node.proc!
      if (node.stall !== null) proc.kill('SIGCONT') // a stopped process is woken before it dies
      node.stall = null
      proc.kill('SIGKILL')
      await proc.exited
      node.proc = null
      kills[node.name] = (kills[node.name] ?? 0) + 1
      await Bun.sleep(downMs)
      if (!stopping) await launch(node)
    } finally {
      node.busy = false
    }
  }

  let stallSeq = 0
  const stallNode = (node: ChaosNode, ms: number): void => {
    const id = ++stallSeq
    node.proc!.kill('SIGSTOP')
    node.stall = id
    stalls[node.name] = (stalls[node.name] ?? 0) + 1
    const timer = setTimeout(() => {
      timers.delete(timer)
      resume(node, id)
    }, ms)
    timers.add(timer)
  }
  const resume = (node: ChaosNode, id?: number): void => {
    if (node.stall === null || (id !== undefined && node.stall !== id)) return
    node.proc?.kill('SIGCONT')
    node.stall = null
  }
  const track = (p: Promise<void>): void => {
    const tracked = p.catch((error) => void errors.push(message(error)))
    pending.add(tracked)
    void tracked.then(() => pending.delete(tracked))
  }

  const timings = { startMs: 0, faultMs: 0, drainMs: 0, settleMs: 0, checkMs: 0 }
  const outcomes: ClientOutcome[] = []
  let skipped = 0
  let invariants: Invariant[] = []
  let nodeErrors = { count: 0, first: [] as string[] }
  let ok = false
  try {
    // The cluster: participants first (the coordinator needs their URLs), each on port 0 the
    // first time and on the same port at every restart.
    for (let i = 0; i < 3; i++) {
      const dir = join(root, `participant${i}`)
      mkdirSync(dir)
      const node: ChaosNode = {
        name: `participant${i}`,
        dir,
        port: 0,
        url: '',
        argv: () => [...PARTICIPANT, '--in-doubt-after', String(options.inDoubtAfterMs ?? 500)],
        env: (port) => ({ PORT: String(port), HOST: '127.0.0.1' }),
        proc: null,
        stall: null,
        busy: false,
        starts: 0,
      }
      await launch(node)
      nodes.push(node)
    }
    const participants = nodes.map((n) => n.url)
    const coordinator: ChaosNode = {
      name: 'coordinator',
      dir: join(root, 'coordinator'),
      port: 0,
      url: '',
      argv: (port) => [
        ...COORDINATOR,
        'serve',
        '--host',
        '127.0.0.1',
        '--port',
        String(port),
        ...participants.flatMap((p) => ['--participant', p]),
        '--timeout',
        String(options.timeoutMs ?? 1000),
      ],
      env: () => ({}),
      proc: null,
      stall: null,
      busy: false,
      starts: 0,
    }
    mkdirSync(coordinator.dir)
    await launch(coordinator)
    nodes.unshift(coordinator)
    for (const n of nodes) kills[n.name] = 0
    for (const n of nodes.slice(1)) stalls[n.name] = 0
    const bank: Bank = { coordinator: coordinator.url, participants }
    log(`cluster in ${root}: coordinator ${coordinator.url}, ${participants.length} participants`)

    const opened = await openAccounts(bank, accounts, initial)
    if (opened.opened !== accounts)
      throw new Error(`opened ${opened.opened} of ${accounts} accounts`)
    await settle(bank, 30_000, options.signal)
    timings.startMs = performance.now() - started

    // The workload: `concurrency` clients, each running one transfer after another until told to
    // stop, from a plan drawn lazily from the seed.
    const planRandom = mulberry32(seed)
    let planned = 0
    const nextTransfer = (): Transfer => {
      const [t] = planTransfers(1, accounts, planRandom, { prefix: 'xfer' })
      return { ...t!, id: `xfer-${planned++}` }
    }
    const client = async () => {
      while (!stopWorkload && !giveUp()) {
        const t = nextTransfer()
        outcomes.push(await runTransfer(bank, t, giveUp))
      }
    }
    faultStart = performance.now()
    log(
      `seed ${seed}: ${seconds} s of faults, ${accounts} accounts, ${concurrency} clients, ` +
        `transfers of 1-50`,
    )
    clients = Promise.all(Array.from({ length: concurrency }, client))

    // The faults. The first three are one of each kind (a coordinator kill, a participant kill,
    // a stall) in an order the seed picks, so every run has all three; then each fault is drawn
    // from the seed: 60% a kill of any node, 40% a stall of a participant.
    const chaosRandom = mulberry32(seed ^ 0x9e3779b9)
    const forced = ['kill-coordinator', 'kill-participant', 'stall']
    for (let i = forced.length - 1; i > 0; i--) {
      const j = Math.floor(chaosRandom() * (i + 1))
      ;[forced[i], forced[j]] = [forced[j]!, forced[i]!]
    }
    const deadline = faultStart + seconds * 1000
    let nextProgress = 5000
    while (!aborted()) {
      const gap = minGapMs + chaosRandom() * (maxGapMs - minGapMs)
      const [kindDraw, targetDraw, lengthDraw] = [chaosRandom(), chaosRandom(), chaosRandom()]
      if (errors.length > 0) break
      if (performance.now() + gap >= deadline) {
        await Bun.sleep(Math.max(0, deadline - performance.now()))
        break
      }
      await Bun.sleep(gap)
      const free = (list: ChaosNode[]) => list.filter((n) => !n.busy && n.stall === null)
      const kind = forced.shift()
      let target: ChaosNode | undefined
      let fault: 'kill' | 'stall'
      if (kind !== undefined) {
        fault = kind === 'stall' ? 'stall' : 'kill'
        const pool = free(kind === 'kill-coordinator' ? [coordinator] : nodes.slice(1))
        target = pool[Math.floor(targetDraw * pool.length)]
        if (target === undefined) forced.unshift(kind) // try again next time
      } else if (kindDraw < 0.6) {
        fault = 'kill'
        target = nodes[Math.floor(targetDraw * nodes.length)]!
      } else {
        fault = 'stall'
        target = nodes[1 + Math.floor(targetDraw * (nodes.length - 1))]!
      }
      if (target === undefined || target.busy || (fault === 'stall' && target.stall !== null)) {
        skipped += 1
        continue
      }
      let line: string
      if (fault === 'kill') {
        const downMs = Math.round(lengthDraw * 400)
        line = `${clock()}  kill ${target.name}, restart after ${downMs} ms`
        track(killAndRestart(target, downMs))
      } else {
        const ms = Math.round(100 + lengthDraw * 1400)
        line = `${clock()}  stall ${target.name} for ${ms} ms`
        stallNode(target, ms)
      }
      schedule.push(line)
      if (options.verbose) log(`  ${line}`)
      if (performance.now() - faultStart >= nextProgress) {
        log(`  ${progress(clock(), outcomes, kills, stalls)}`)
        nextProgress += 5000
      }
    }
    timings.faultMs = performance.now() - faultStart

    // End of the faults: wake every stalled node, wait for the restarts under way (anything down
    // comes back), then stop the clients, which finish (and retry) what they began.
    const ended = performance.now()
    for (const timer of timers) clearTimeout(timer)
    timers.clear()
    for (const n of nodes) resume(n)
    await Promise.all(pending)
    for (const n of nodes) if (n.proc === null && !aborted()) await launch(n)
    if (errors.length > 0) throw new Error(errors[0])
    stopWorkload = true
    await clients
    timings.drainMs = performance.now() - ended
    if (aborted()) throw new Error('interrupted')
    log(`faults over: ${progress(clock(), outcomes, kills, stalls)}`)

    const settleStarted = performance.now()
    let settled: string[] = []
    try {
      await settle(bank, options.settleMs ?? 60_000, options.signal)
    } catch (error) {
      settled = [message(error)]
    }
    timings.settleMs = performance.now() - settleStarted

    const checkStarted = performance.now()
    invariants = await check({
      bank,
      accounts,
      initial,
      outcomes,
      coordinator,
      participantNodes: nodes.slice(1),
      settled,
    })
    timings.checkMs = performance.now() - checkStarted
    nodeErrors = readNodeErrors(root, nodes)
    ok = invariants.every((i) => i.ok)
  } catch (error) {
    errors.unshift(message(error))
  } finally {
    stopping = true
    stopWorkload = abandon = true
    for (const timer of timers) clearTimeout(timer)
    await Promise.all(pending)
    await stopAll(procs)
    await clients
    process.off('exit', onExit)
  }

  const failed = !ok || errors.length > 0
  const keep = options.keep ?? 'on-failure'
  const kept = keep === 'always' || (keep === 'on-failure' && failed && !aborted())
  if (!kept) rmSync(root, { recursive: true, force: true })
  const count = (how: ClientOutcome['how']) => outcomes.filter((o) => o.how === how).length
  return {
    ok: ok && errors.length === 0,
    seed,
    seconds,
    accounts,
    concurrency,
    transfers: {
      total: outcomes.length,
      committed: outcomes.filter((o) => o.decision === 'commit').length,
      aborted: outcomes.filter((o) => o.decision === 'abort').length,
      retried: count('retried'),
      unrecorded: count('unrecorded'),
      lost: count('lost'),
    },
    kills,
    stalls,
    skipped,
    schedule,
    invariants,
    nodeErrors,
    errors,
    timings: Object.fromEntries(
      Object.entries(timings).map(([k, v]) => [k, Math.round(v)]),
    ) as Report['timings'],
    totalMs: Math.round(performance.now() - started),
    dir: kept ? root : null,
    processes: { started: nodes.reduce((a, n) => a + n.starts, 0), left: procs.size },
  }
}

function progress(
  at: string,
  outcomes: readonly ClientOutcome[],
  kills: Record<string, number>,
  stalls: Record<string, number>,
): string {
  const committed = outcomes.filter((o) => o.decision === 'commit').length
  const k = Object.values(kills).reduce((a, b) => a + b, 0)
  const s = Object.values(stalls).reduce((a, b) => a + b, 0)
  return `${at}: ${outcomes.length} transfers (${committed} committed), ${k} kills, ${s} stalls`
}

/** One transfer as a client does it: POST it; if the request fails (the coordinator is down),
 * wait until the coordinator answers, then ask what it recorded: an id it never recorded is
 * aborted (presumed abort) and not run again; a recorded one is POSTed again with the same id,
 * which answers the recorded outcome (or waits for the decision). */
async function runTransfer(
  bank: Bank,
  t: Transfer,
  abandon: () => boolean,
): Promise<ClientOutcome> {
  const ops: Record<number, object[]> = {}
  ;(ops[homeOf(bank, t.from)] ??= []).push({
    op: 'add',
    key: accountKey(t.from),
    amount: -t.amount,
    min: 0,
  })
  ;(ops[homeOf(bank, t.to)] ??= []).push({ op: 'add', key: accountKey(t.to), amount: t.amount })
  const body = JSON.stringify({ id: t.id, ops })
  let reply = await postTransaction(bank.coordinator, body)
  if (reply.decision) return { ...t, decision: reply.decision, how: 'reply' }
  const giveUp = Date.now() + RETRY_LIMIT_MS
  for (let attempt = 0; ; attempt++) {
    if (Date.now() > giveUp || abandon()) {
      return { ...t, decision: null, how: 'lost', error: reply.error }
    }
    const ceiling = Math.min(400, 25 * 2 ** attempt)
    await Bun.sleep(ceiling / 2 + (ceiling / 2) * Math.random())
    const state = await transactionState(bank.coordinator, t.id)
    if (state === null) continue // still down
    if (state === 'unknown') return { ...t, decision: 'abort', how: 'unrecorded' }
    reply = await postTransaction(bank.coordinator, body)
    if (reply.decision) return { ...t, decision: reply.decision, how: 'retried' }
  }
}

async function postTransaction(
  coordinator: string,
  body: string,
): Promise<{ decision?: 'commit' | 'abort'; error?: string }> {
  try {
    const response = await fetch(`${coordinator}/transactions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
      signal: AbortSignal.timeout(30_000),
    })
    const reply = (await response.json().catch(() => null)) as { decision?: unknown } | null
    const decision = reply?.decision
    if (response.status === 200 && (decision === 'commit' || decision === 'abort')) {
      return { decision }
    }
    return { error: `HTTP ${response.status}: ${JSON.stringify(reply)}` }
  } catch (error) {
    return { error: message(error) }
  }
}

/** The coordinator's `state` for `id`, or null when it cannot be reached. */
async function transactionState(coordinator: string, id: string): Promise<string | null> {
  try {
    const response = await fetch(`${coordinator}/transactions/${id}`, {
      signal: AbortSignal.timeout(2000),
    })
    if (!response.ok) return null
    const body = (await response.json()) as { state?: unknown }
    return typeof body.state === 'string' ? body.state : null
  } catch {
    return null
  }
}

/** Polls until nothing is in flight anywhere (see the bank's `pendingWork`). */
async function settle(bank: Bank, ms: number, signal?: AbortSignal): Promise<void> {
  const deadline = Date.now() + ms
  for (;;) {
    const left = await pendingWork(bank)
    if (left.length === 0) return
    if (signal?.aborted) throw new Error('interrupted')
    if (Date.now() > deadline) throw new Error(`not quiet after ${ms} ms: ${left.join('; ')}`)
    await Bun.sleep(50)
  }
}

type CheckInput = {
  bank: Bank
  accounts: number
  initial: number
  outcomes: readonly ClientOutcome[]
  coordinator: ChaosNode
  participantNodes: readonly ChaosNode[]
  /** Why the cluster did not become quiet, if it did not. */
  settled: string[]
}

type CoordinatorView = {
  state: string
  phase?: string
  decision?: string | null
  votes?: Record<string, unknown>
}
type ParticipantView = { state: string; heuristic?: boolean }

/** Checks every invariant from the nodes' own APIs and files. */
async function check(input: CheckInput): Promise<Invariant[]> {
  const { bank, outcomes, coordinator, participantNodes } = input
  const invariants: Invariant[] = []
  const add = (name: string, details: string[], summary: string) =>
    invariants.push({ name, ok: details.length === 0, summary, details })

  // What the nodes' files say. The coordinator rewrites decision.txt in the background after
  // logging a decision (its log is the truth, the file a view), so give the last write a moment.
  const status = (await getJson(`${coordinator.url}/status`)) as {
    counts: Record<string, number>
  }
  const decidedCount = (status.counts.commit ?? 0) + (status.counts.abort ?? 0)
  const readDecisions = () =>
    parseLines(readText(join(coordinator.dir, 'decision.txt')), ['commit', 'abort'])
  let decisionFile = readDecisions()
  for (let n = 0; n < 30 && decisionFile.lines.length < decidedCount; n++) {
    await Bun.sleep(100)
    decisionFile = readDecisions()
  }
  const stateFiles = participantNodes.map((n) =>
    parseLines(readText(join(n.dir, 'state.txt')), ['committed', 'aborted']),
  )

  // Every transaction anyone mentions: the clients' transfers, decision.txt, every state.txt.
  const ids = new Set<string>(outcomes.map((o) => o.id))
  for (const l of decisionFile.lines) ids.add(l.id)
  for (const f of stateFiles) for (const l of f.lines) ids.add(l.id)
  const idList = [...ids]
  const views = await mapLimit(idList, 24, async (id) => {
    const c = (await getJson(`${coordinator.url}/transactions/${id}`)) as CoordinatorView
    const p = await Promise.all(
      participantNodes.map(
        async (n) => (await getJson(`${n.url}/transactions/${id}`)) as ParticipantView,
      ),
    )
    return { id, c, p }
  })
  const byId = new Map(views.map((v) => [v.id, v]))

  // 1. Money: conserved, never negative, and each balance what the committed transfers make it.
  const balances = await readBalances(bank, input.accounts)
  const total = balances.reduce((a, b) => a + b, 0)
  const expectedTotal = input.accounts * input.initial
  add(
    'total conserved',
    total === expectedTotal ? [] : [`total ${total}, expected ${expectedTotal}`],
    `${total} = ${expectedTotal}`,
  )
  const negative = balances.flatMap((b, i) => (b < 0 ? [`account ${i}: ${b}`] : []))
  add(
    'no negative balance',
    negative,
    `${balances.length} accounts, lowest ${Math.min(...balances)}`,
  )
  const expected = new Array<number>(input.accounts).fill(input.initial)
  for (const o of outcomes) {
    if (byId.get(o.id)!.c.state !== 'commit') continue
    expected[o.from]! -= o.amount
    expected[o.to]! += o.amount
  }
  const wrongBalances = balances.flatMap((b, i) =>
    b === expected[i] ? [] : [`account ${i}: ${b}, the committed transfers make it ${expected[i]}`],
  )
  add(
    'balances match the committed transfers',
    wrongBalances,
    `${input.accounts} accounts, from the coordinator's commits`,
  )

  // 2. What each client was told is what the coordinator recorded; an id it never recorded is
  // unknown there (presumed abort) and on every participant.
  const clientMismatches: string[] = []
  for (const o of outcomes) {
    const { c, p } = byId.get(o.id)!
    if (o.how === 'lost') clientMismatches.push(`${o.id}: no outcome after retrying (${o.error})`)
    else if (o.how === 'unrecorded') {
      const heard = p.flatMap((v, i) => (v.state === 'unknown' ? [] : [`p${i} ${v.state}`]))
      if (c.state !== 'unknown' || heard.length > 0) {
        clientMismatches.push(
          `${o.id}: unknown when the client asked, now ${c.state} at the coordinator` +
            (heard.length > 0 ? `, ${heard.join(', ')}` : ''),
        )
      }
    } else if (c.state !== o.decision || c.phase !== 'done') {
      clientMismatches.push(`${o.id}: client told ${o.decision}, coordinator ${JSON.stringify(c)}`)
    }
  }
  add("clients' outcomes are the coordinator's", clientMismatches, `${outcomes.length} transfers`)

  // 3. Every transaction the coordinator decided has that outcome on every participant it
  // involved, and is unknown on the others; one it never recorded is unknown everywhere.
  const participantMismatches: string[] = []
  let decided = 0
  for (const { id, c, p } of views) {
    const involved = new Set(Object.keys(c.votes ?? {}))
    if (c.state === 'commit' || c.state === 'abort') decided += 1
    p.forEach((v, i) => {
      const url = participantNodes[i]!.url
      let want: string
      if (c.state === 'commit' || c.state === 'abort') {
        want = !involved.has(url) ? 'unknown' : c.state === 'commit' ? 'committed' : 'aborted'
      } else if (c.state === 'unknown') want = 'unknown'
      else want = `(an outcome, the coordinator still says ${c.state})`
      if (v.state !== want || v.heuristic) {
        participantMismatches.push(
          `${id}: coordinator ${c.state} (involves ${[...involved].join(' ') || 'none'}), ` +
            `participant${i} ${url} is ${v.state}${v.heuristic ? ' (heuristic)' : ''}`,
        )
      }
    })
  }
  add(
    'participants agree with the coordinator',
    participantMismatches,
    `${decided} decided, ${idList.length} ids on ${participantNodes.length} participants`,
  )

  // 4. decision.txt: one line per decided transaction, agreeing with GET /transactions/:id.
  const decisionProblems = [...decisionFile.problems]
  if (decisionFile.lines.length !== decidedCount) {
    decisionProblems.push(
      `${decisionFile.lines.length} lines, the coordinator counts ${decidedCount} decided`,
    )
  }
  const inDecisionFile = new Set(decisionFile.lines.map((l) => l.id))
  for (const l of decisionFile.lines) {
    const state = byId.get(l.id)!.c.state
    if (state !== l.value) decisionProblems.push(`${l.id}=${l.value}, GET says ${state}`)
  }
  for (const { id, c } of views) {
    if ((c.state === 'commit' || c.state === 'abort') && !inDecisionFile.has(id)) {
      decisionProblems.push(`${id} (${c.state}) is missing`)
    }
  }
  add('decision.txt agrees with the coordinator', decisionProblems, `${decidedCount} lines`)

  // 5. Each state.txt: sorted, one line per decided transaction, agreeing with the participant.
  const stateProblems: string[] = []
  const stateSummary: string[] = []
  await Promise.all(
    participantNodes.map(async (n, i) => {
      const file = stateFiles[i]!
      const s = (await getJson(`${n.url}/status`)) as { counts: Record<string, number> }
      const count = (s.counts.committed ?? 0) + (s.counts.aborted ?? 0)
      stateSummary[i] = `${file.lines.length}`
      for (const problem of file.problems) stateProblems.push(`participant${i}: ${problem}`)
      if (file.lines.length !== count) {
        stateProblems.push(
          `participant${i}: ${file.lines.length} lines, its /status counts ${count}`,
        )
      }
      const sorted = file.lines.map((l) => l.id)
      if (sorted.some((id, k) => k > 0 && sorted[k - 1]! >= id)) {
        stateProblems.push(`participant${i}: lines are not in plain string order`)
      }
      const listed = new Set(sorted)
      for (const l of file.lines) {
        const state = byId.get(l.id)!.p[i]!.state
        if (state !== l.value)
          stateProblems.push(`participant${i}: ${l.id}=${l.value}, GET ${state}`)
      }
      for (const { id, p } of views) {
        const state = p[i]!.state
        if ((state === 'committed' || state === 'aborted') && !listed.has(id)) {
          stateProblems.push(`participant${i}: ${id} (${state}) is missing`)
        }
      }
    }),
  )
  add('state.txt agrees with each participant', stateProblems, `${stateSummary.join(', ')} lines`)

  // 6. Nothing in flight: the cluster became quiet, and nothing is prepared, locked, in doubt or
  // resolved by hand.
  const leftovers = [...input.settled]
  if ((status.counts.preparing ?? 0) > 0 || (status.counts.delivering ?? 0) > 0) {
    leftovers.push(`coordinator: ${JSON.stringify(status.counts)}`)
  }
  for (const [i, n] of participantNodes.entries()) {
    const s = (await getJson(`${n.url}/status`)) as {
      prepared: string[]
      locks: Record<string, string>
      inDoubt: unknown[]
      heuristic: unknown[]
    }
    const locks = Object.keys(s.locks)
    if (s.prepared.length + locks.length + s.inDoubt.length + s.heuristic.length > 0) {
      leftovers.push(
        `participant${i}: prepared ${s.prepared.join(' ') || 'none'}, locks ` +
          `${locks.join(' ') || 'none'}, ${s.inDoubt.length} in doubt, ` +
          `${s.heuristic.length} heuristic`,
      )
    }
  }
  add('nothing prepared or locked', leftovers, 'coordinator idle, participants hold nothing')
  return invariants
}

type Line = { id: string; value: string }

/** `id=value` lines; problems for malformed and repeated ones. */
function parseLines(text: string, values: string[]): { lines: Line[]; problems: string[] } {
  const lines: Line[] = []
  const problems: string[] = []
  const seen = new Set<string>()
  text.split('\n').forEach((raw, n) => {
    if (raw === '') return
    const match = /^([^=]+)=(.*)$/.exec(raw)
    if (!match || !values.includes(match[2]!)) {
      problems.push(`line ${n + 1} is malformed: ${JSON.stringify(raw)}`)
      return
    }
    if (seen.has(match[1]!)) problems.push(`line ${n + 1} repeats ${match[1]}`)
    seen.add(match[1]!)
    lines.push({ id: match[1]!, value: match[2]! })
  })
  return { lines, problems }
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return ''
  }
}

/** The stderr lines of every node (an error a node logged), over all its restarts. */
function readNodeErrors(root: string, nodes: readonly ChaosNode[]) {
  const lines: string[] = []
  for (const n of nodes) {
    for (const line of readText(join(root, 'logs', `${n.name}.log`)).split('\n')) {
      if (line.startsWith('! ')) lines.push(`${n.name}: ${line.slice(2)}`)
    }
  }
  return { count: lines.length, first: lines.slice(0, 5) }
}

async function getJson(url: string): Promise<unknown> {
  for (let attempt = 1; ; attempt++) {
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(5000) })
      if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`)
      return await response.json()
    } catch (error) {
      if (attempt >= 3) throw error
      await Bun.sleep(100)
    }
  }
}

async function mapLimit<T, R>(items: readonly T[], limit: number, f: (t: T) => Promise<R>) {
  const results: R[] = new Array(items.length)
  let next = 0
  const worker = async () => {
    for (let i = next++; i < items.length; i = next++) results[i] = await f(items[i]!)
  }
  await Promise.all(Array.from({ length: limit }, worker))
  return results
}

/** Reads the node's stdout up to "listening on URL" (within `ms`), copying stdout and stderr
 * (stderr lines marked `! `) to its log file, and keeps copying afterwards. */
async function listening(
  proc: Subprocess<'ignore', 'pipe', 'pipe'>,
  logFile: string,
  ms: number,
): Promise<string> {
  const stderr = copyLines(proc.stderr.getReader(), logFile, '! ')
  const reader = proc.stdout.getReader()
  const decoder = new TextDecoder()
  let text = ''
  const timeout = setTimeout(() => proc.kill('SIGKILL'), ms)
  try {
    for (;;) {
      const match = /listening on (http:\/\/\S+)/.exec(text)
      if (match) {
        void copyLines(reader, logFile, '')
        return match[1]!
      }
      const { value, done } = await reader.read()
      if (done) {
        await stderr
        const tail = readText(logFile).split('\n').slice(-5).join(' | ')
        throw new Error(`exited before listening (code ${await proc.exited}): ${tail}`)
      }
      const chunk = decoder.decode(value, { stream: true })
      text += chunk
      appendLine(logFile, chunk)
    }
  } finally {
    clearTimeout(timeout)
  }
}

async function copyLines(
  reader: { read(): Promise<{ done: boolean; value?: Uint8Array }> },
  logFile: string,
  mark: string,
): Promise<void> {
  const decoder = new TextDecoder()
  let partial = ''
  try {
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      const lines = (partial + decoder.decode(value, { stream: true })).split('\n')
      partial = lines.pop()!
      for (const line of lines) appendLine(logFile, `${mark}${line}\n`)
    }
  } catch {}
  if (partial !== '') appendLine(logFile, `${mark}${partial}\n`)
}

function appendLine(path: string, text: string): void {
  try {
    appendFileSync(path, text)
  } catch {} // the directory is gone once the run is over
}

/** Wakes and stops every process still running: SIGTERM, then SIGKILL after 3 s. */
async function stopAll(procs: Set<Subprocess>): Promise<void> {
  const running = [...procs]
  for (const proc of running) {
    proc.kill('SIGCONT')
    proc.kill('SIGTERM')
  }
  const gone = Promise.all(running.map((p) => p.exited))
  if ((await Promise.race([gone, Bun.sleep(3000).then(() => 'late')])) === 'late') {
    for (const proc of running) proc.kill('SIGKILL')
    await gone
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

/** The report as the lines `bun run chaos` prints. */
export function formatReport(report: Report): string[] {
  const t = report.transfers
  const per = (counts: Record<string, number>) =>
    Object.entries(counts)
      .map(([name, n]) => `${name} ${n}`)
      .join(', ')
  const sum = (counts: Record<string, number>) => Object.values(counts).reduce((a, b) => a + b, 0)
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`
  const lines = [
    `faults: ${sum(report.kills)} kills (${per(report.kills)})`,
    `        ${sum(report.stalls)} stalls (${per(report.stalls)})`,
    `transfers: ${t.total}: ${t.committed} committed, ${t.aborted} aborted` +
      (t.lost > 0 ? `, ${t.lost} LOST (no outcome)` : ''),
    `  ${t.retried} retried with the same id after the coordinator went down, ` +
      `${t.unrecorded} aborted as it never recorded them`,
    `times: start ${s(report.timings.startMs)}, faults ${s(report.timings.faultMs)}, ` +
      `drain ${s(report.timings.drainMs)}, quiet after ${s(report.timings.settleMs)}, ` +
      `checks ${s(report.timings.checkMs)}`,
  ]
  if (report.invariants.length > 0) lines.push('invariants:')
  for (const inv of report.invariants) {
    lines.push(`  ${inv.ok ? 'ok  ' : 'FAIL'}  ${inv.name}: ${inv.summary}`)
    for (const d of inv.details.slice(0, 10)) lines.push(`          ${d}`)
    if (inv.details.length > 10) lines.push(`          ... ${inv.details.length - 10} more`)
  }
  if (report.nodeErrors.count > 0) {
    lines.push(`nodes logged ${report.nodeErrors.count} error lines, first:`)
    for (const l of report.nodeErrors.first) lines.push(`  ${l}`)
  }
  for (const e of report.errors) lines.push(`error: ${e}`)
  if (report.dir) lines.push(`kept ${report.dir} (node directories and logs/)`)
  const failed = report.invariants.filter((i) => !i.ok).map((i) => i.name)
  lines.push(
    report.ok
      ? `PASS: every invariant held (seed ${report.seed}, ${s(report.totalMs)})`
      : `FAIL: ${failed.length > 0 ? failed.join('; ') : 'the run did not complete'} ` +
          `(seed ${report.seed}, ${s(report.totalMs)})`,
  )
  return lines
}

function integer(value: string | undefined, fallback: number, name: string, min = 1): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!/^\d+$/.test(value) || n < min) {
    console.error(`error: invalid --${name} ${JSON.stringify(value)}: expected a number >= ${min}`)
    process.exit(2)
  }
  return n
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string' },
      seed: { type: 'string' },
      accounts: { type: 'string' },
      concurrency: { type: 'string' },
      json: { type: 'boolean' },
      verbose: { type: 'boolean' },
      keep: { type: 'boolean' },
    },
    strict: true,
  })
  const seed = integer(values.seed, Math.floor(Math.random() * 2 ** 31), 'seed', 0)
  const accounts = integer(values.accounts, 30, 'accounts', 2)
  const controller = new AbortController()
  const interrupt = () => controller.abort()
  process.on('SIGINT', interrupt)
  process.on('SIGTERM', interrupt)
  const report = await runChaos({
    seconds: integer(values.seconds, 30, 'seconds'),
    seed,
    accounts,
    concurrency: integer(values.concurrency, 16, 'concurrency'),
    log: values.json ? undefined : (line) => console.log(line),
    verbose: values.verbose,
    keep: values.keep ? 'always' : 'on-failure',
    signal: controller.signal,
  })
  if (values.json) console.log(JSON.stringify(report, null, 2))
  else for (const line of formatReport(report)) console.log(line)
  return controller.signal.aborted ? 130 : report.ok ? 0 : 1
}

if (import.meta.main) {
  try {
    process.exit(await main())
  } catch (error) {
    console.error(`error: ${message(error)}`)
    const code = (error as { code?: unknown } | null)?.code
    process.exit(typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS') ? 2 : 1)
  }
}
