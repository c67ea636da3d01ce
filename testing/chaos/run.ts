// One chaos experiment from start to end: the cluster up (on a shared log, its database first)
// and the accounts open, the workload and the faults together, then the drain, the wait for
// quiet and the checks.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openAccounts, pendingWork, type Bank } from '../bank.ts'
import { check } from './checks.ts'
import { Workload } from './clients.ts'
import { Cluster } from './cluster.ts'
import { FaultLoop } from './faults.ts'
import { LogDb } from './log-db.ts'
import { readNodeErrors } from './logs.ts'
import { buildReport, progress } from './report.ts'
import type { ChaosOptions, Invariant, Report } from './types.ts'
import { message } from './util.ts'

type Settings = Required<Omit<ChaosOptions, 'signal' | 'keep' | 'logDb'>> & {
  keep: NonNullable<ChaosOptions['keep']>
  signal?: AbortSignal
  logDb?: string
  /** Coordinators on one log in PostgreSQL: more than one, or a log database given. */
  shared: boolean
  aborted: () => boolean
}

/** What a run found, filled in step by step so a run that breaks still reports what it has. */
type Findings = {
  timings: Report['timings']
  invariants: Invariant[]
  nodeErrors: Report['nodeErrors']
  ok: boolean
  takeovers: number
}

type Run = {
  s: Settings
  started: number
  cluster: Cluster
  workload: Workload
  faults: FaultLoop
  found: Findings
}

/** Runs one chaos experiment and returns what it found; never leaves a process behind. */
export async function runChaos(options: ChaosOptions = {}): Promise<Report> {
  const s = settings(options)
  const started = performance.now()
  const root = mkdtempSync(join(tmpdir(), 'twophase-chaos-'))
  mkdirSync(join(root, 'logs'))
  const cluster = new Cluster(root, started)
  const workload = new Workload(s.aborted)
  const faults = new FaultLoop(cluster, s)
  const found: Findings = {
    timings: { startMs: 0, faultMs: 0, drainMs: 0, settleMs: 0, checkMs: 0 },
    invariants: [],
    nodeErrors: { count: 0, first: [] },
    ok: false,
    takeovers: 0,
  }
  const run: Run = { s, started, cluster, workload, faults, found }
  try {
    const bank = await startBank(run)
    await faultPhase(run, bank)
    await drain(run)
    await settleAndCheck(run, bank)
  } catch (error) {
    cluster.errors.unshift(message(error))
  } finally {
    // Whatever happened: no more retries or restarts, every process gone, then the clients.
    workload.abandon()
    await cluster.shutdown()
    await workload.done
    await cluster.logDb?.close().catch((e) => void cluster.errors.push(message(e)))
    cluster.dispose()
  }
  return finish(run)
}

function settings(options: ChaosOptions): Settings {
  const coordinators = options.coordinators ?? 1
  return {
    coordinators,
    logDb: options.logDb,
    leaseMs: options.leaseMs ?? 1000,
    shared: coordinators > 1 || options.logDb !== undefined,
    seed: options.seed ?? 1,
    seconds: options.seconds ?? 30,
    accounts: options.accounts ?? 30,
    concurrency: options.concurrency ?? 16,
    initial: options.initial ?? 100,
    timeoutMs: options.timeoutMs ?? 1000,
    inDoubtAfterMs: options.inDoubtAfterMs ?? 500,
    minGapMs: options.minGapMs ?? 100,
    maxGapMs: options.maxGapMs ?? 600,
    settleMs: options.settleMs ?? 60_000,
    secure: options.secure ?? false,
    log: options.log ?? (() => {}),
    verbose: options.verbose ?? false,
    keep: options.keep ?? 'on-failure',
    signal: options.signal,
    aborted: () => options.signal?.aborted === true,
  }
}

/** The cluster up, the accounts open, and quiet before the faults begin. */
async function startBank({ s, cluster, found, started }: Run): Promise<Bank> {
  if (s.shared) cluster.logDb = await LogDb.open(cluster.root, s.logDb)
  const bank = await cluster.start(s)
  const secured = s.secure ? ' (secret, client tokens, mutual TLS)' : ''
  const where = s.shared ? `${s.coordinators} coordinators` : `coordinator ${bank.coordinator}`
  s.log(`cluster in ${cluster.root}: ${where}, ${bank.participants.length} participants${secured}`)
  if (s.shared) {
    const db = cluster.logDb!.server ? 'a throwaway PostgreSQL' : cluster.logDb!.label
    const ports = cluster.coordinators.map((c) => new URL(c.url).port).join(' ')
    s.log(`  on one log in ${db}, lease ${s.leaseMs} ms; the coordinators on ports ${ports}`)
  }
  const opened = await openAccounts(bank, s.accounts, s.initial)
  if (opened.opened !== s.accounts)
    throw new Error(`opened ${opened.opened} of ${s.accounts} accounts`)
  await settle(bank, cluster, 30_000, s.signal)
  found.timings.startMs = performance.now() - started
  return bank
}

/** The clients and the faults together, for `seconds`. */
async function faultPhase({ s, cluster, workload, faults, found }: Run, bank: Bank) {
  cluster.faultStart = performance.now()
  s.log(
    `seed ${s.seed}: ${s.seconds} s of faults, ${s.accounts} accounts, ${s.concurrency} clients, ` +
      `transfers of 1-50`,
  )
  // The clients as an application would be: a client token (on a secure cluster), no secret.
  // On a shared log the ids carry a tag of the run: a log given by URL may hold older ones.
  const tag = `${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`
  const shared = s.shared
    ? { coordinators: cluster.coordinators.map((c) => c.url), prefix: `xfer-${tag}` }
    : undefined
  const clients = { ...bank, auth: cluster.clientAuth }
  workload.start(clients, s.accounts, s.seed, s.concurrency, shared)
  await faults.run(workload.outcomes)
  found.timings.faultMs = performance.now() - cluster.faultStart
}

/** Everything back up first (the clients' retries need the coordinator), then the clients
 * stopped, finishing (and retrying) what they began. */
async function drain({ s, cluster, workload, found }: Run): Promise<void> {
  const ended = performance.now()
  await cluster.endFaults(s.aborted)
  workload.stop()
  await workload.done
  found.timings.drainMs = performance.now() - ended
  if (s.aborted()) throw new Error('interrupted')
  s.log(
    `faults over: ${progress(cluster.clock(), workload.outcomes, cluster.kills, cluster.stalls)}`,
  )
}

/** Waits for quiet (a cluster that never gets there fails an invariant, not the run), then
 * checks every invariant. */
async function settleAndCheck({ s, cluster, workload, found }: Run, bank: Bank): Promise<void> {
  const settleStarted = performance.now()
  let settled: string[] = []
  try {
    await settle(bank, cluster, s.settleMs, s.signal)
  } catch (error) {
    settled = [message(error)]
  }
  found.timings.settleMs = performance.now() - settleStarted

  const checkStarted = performance.now()
  const checked = await check({
    bank,
    accounts: s.accounts,
    initial: s.initial,
    outcomes: workload.outcomes,
    coordinators: cluster.coordinators,
    participantNodes: cluster.participants,
    settled,
    logDb: cluster.logDb,
  })
  found.invariants = checked.invariants
  found.takeovers = checked.log?.takeovers ?? 0
  found.timings.checkMs = performance.now() - checkStarted
  found.nodeErrors = readNodeErrors(cluster.root, cluster.nodes)
  found.ok = found.invariants.every((i) => i.ok)
}

/** Polls until nothing is in flight anywhere (see the bank's `pendingWork`): on no coordinator
 * and no participant. */
async function settle(bank: Bank, cluster: Cluster, ms: number, signal?: AbortSignal) {
  const deadline = Date.now() + ms
  const others = cluster.coordinators.slice(1).map((c) => c.url)
  for (;;) {
    const left = await pendingWork(bank)
    for (const coordinator of others) {
      left.push(...(await pendingWork({ ...bank, coordinator, participants: [] })))
    }
    if (left.length === 0) return
    if (signal?.aborted) throw new Error('interrupted')
    if (Date.now() > deadline) throw new Error(`not quiet after ${ms} ms: ${left.join('; ')}`)
    await Bun.sleep(50)
  }
}

/** Removes the directory unless it is kept (by default only a failed run's), and reports. */
function finish({ s, started, cluster, workload, faults, found }: Run): Report {
  const failed = !found.ok || cluster.errors.length > 0
  const kept = s.keep === 'always' || (s.keep === 'on-failure' && failed && !s.aborted())
  if (!kept) rmSync(cluster.root, { recursive: true, force: true })
  return buildReport({
    ...found,
    seed: s.seed,
    seconds: s.seconds,
    accounts: s.accounts,
    concurrency: s.concurrency,
    secure: s.secure,
    outcomes: workload.outcomes,
    kills: cluster.kills,
    stalls: cluster.stalls,
    skipped: faults.skipped,
    schedule: faults.schedule,
    errors: cluster.errors,
    started,
    dir: kept ? cluster.root : null,
    processes: {
      started: cluster.nodes.reduce((a, n) => a + n.starts, 0),
      left: cluster.procs.size,
    },
    shared: s.shared
      ? {
          coordinators: s.coordinators,
          logDb: cluster.logDb?.label ?? (s.logDb === undefined ? 'throwaway' : 'unreachable'),
          leaseMs: s.leaseMs,
          takeovers: found.takeovers,
          fencings: cluster.fencings,
        }
      : null,
  })
}
