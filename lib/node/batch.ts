// Batch mode, the classic exercise's coordinator: transactions one after another, each
// decided and then delivered to every participant before the next begins, in two-phase commit
// (by default) or in three-phase commit (`--protocol 3pc`).
import { existsSync, mkdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { COORDINATOR_DB, CoordinatorNode, type CoordinatorOptions } from './coordinator-node.ts'
import type { CoordinatorRecord, CoordinatorTxn } from '../core/index.ts'
import type { SharedLog } from '../store/store.ts'
import { UsageError } from '../core/errors.ts'
import { quorum } from '../core/three-phase.ts'
import type { Ports } from './ports.ts'

export type BatchOptions = {
  dir: string
  participants: readonly string[]
  txns: readonly string[]
  timeoutMs: number
  deliverTimeoutMs: number
  /** How each transaction the log does not know yet runs; '2pc' by default. */
  protocol?: '2pc' | '3pc'
  log?: (line: string) => void
  /** Clock, timers and network (signed and over TLS as configured); Bun's by default. */
  ports?: Ports
  /** The log in PostgreSQL (`--log-db`) instead of coordinator.db. */
  shared?: SharedLog<CoordinatorRecord>
}

const NO_PARTICIPANTS =
  'no participants configured: set PEER_PARTICIPANT0_HOST and PEER_PARTICIPANT0_PORT, ' +
  'or pass --participant host:port'

/** Creates a node's directory if it is missing, as etcd and PostgreSQL create their data
 * directory; every failure names the path. */
export function ensureDir(dir: string): void {
  if (existsSync(dir) && !statSync(dir).isDirectory()) {
    throw new UsageError(`--dir ${dir} is not a directory`)
  }
  try {
    mkdirSync(dir, { recursive: true })
  } catch (error) {
    throw new UsageError(`cannot create the directory ${dir} (--dir): ${codeOf(error)}`)
  }
}

function codeOf(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : error instanceof Error ? error.message : String(error)
}

/** Opens a coordinator's log in `dir`; a failure names the file. */
export function openCoordinator(options: CoordinatorOptions): CoordinatorNode {
  try {
    return new CoordinatorNode(options)
  } catch (error) {
    if (error instanceof UsageError) throw error // another node holds the directory
    const path = join(options.dir, COORDINATOR_DB)
    throw new Error(`cannot open the coordinator's log ${path}: ${codeOf(error)}`)
  }
}

/** Runs `txns` one after another and resolves to the reason the run is not clean, or null.
 * Without participants only a re-run works, one whose log already holds every transaction:
 * without a log it fails before it creates anything. */
export async function runBatch(options: BatchOptions): Promise<string | null> {
  const log = options.log ?? console.log
  const hasLog = options.shared !== undefined || existsSync(join(options.dir, COORDINATOR_DB))
  if (options.participants.length === 0 && !hasLog) throw new UsageError(NO_PARTICIPANTS)
  ensureDir(options.dir)
  // A re-run after a crash prepares again what it began and never decided: the operator asked
  // for these transactions, and no decision was sent.
  const node = openCoordinator({
    dir: options.dir,
    timeoutMs: options.timeoutMs,
    retryUndecided: true,
    ...(options.ports ? { ports: options.ports } : {}),
    ...(options.shared ? { shared: options.shared } : {}),
  })
  try {
    await node.start()
    for (const txn of options.txns) {
      if (!node.txn(txn) && options.participants.length === 0) {
        throw new UsageError(NO_PARTICIPANTS)
      }
      const decided = await decision(node, txn, options)
      if (typeof decided === 'string') return decided
      log(`${txn}=${decided.decision}`)
      const problem = await settle(node, txn, options.deliverTimeoutMs)
      if (problem) return problem
    }
    // Decisions an earlier run recorded but did not deliver are delivered too.
    for (const t of node.txns.values()) {
      const problem = await settle(node, t.txn, options.deliverTimeoutMs)
      if (problem) return problem
    }
    return null
  } finally {
    await node.flushView()
    await node.close()
  }
}

/** Runs `txn` (unless the log knows it) until it is decided; a reason if it is not in time.
 * Two-phase commit is decided by the prepare timeout at the latest. Three-phase commit has no
 * timeout after precommit (a quorum of precommits decides, and nothing else may), so a batch
 * run waits for it `--timeout` plus `--deliver-timeout`, then stops: a re-run goes on with it. */
async function decision(
  node: CoordinatorNode,
  txn: string,
  options: BatchOptions,
): Promise<CoordinatorTxn | string> {
  const run = node.run(txn, options.participants, {}, options.protocol ?? '2pc')
  if (node.txn(txn)?.protocol !== '3pc') return run
  const ms = options.timeoutMs + options.deliverTimeoutMs
  let timer: ReturnType<typeof setTimeout> | undefined
  const late = new Promise<null>((done) => (timer = setTimeout(() => done(null), ms)))
  try {
    return (await Promise.race([run, late])) ?? undecided(node.txn(txn)!, ms)
  } finally {
    clearTimeout(timer)
  }
}

/** Why a three-phase transaction is still undecided: whom it waits for. */
function undecided(t: CoordinatorTxn, ms: number): string {
  const rerun = 'run the coordinator again to go on with it'
  const waiting = t.participants.filter((p) => !t.acks.includes(p))
  if (t.phase !== 'precommitting') {
    return `${t.txn} is undecided after ${ms} ms (${t.phase}); ${rerun}`
  }
  return (
    `${t.txn} is undecided after ${ms} ms: ${t.acks.length} of ${t.participants.length} ` +
    `participants precommitted, a quorum is ${quorum(t.participants.length)}, waiting for ` +
    `${waiting.join(', ')}; ${rerun}`
  )
}

/** Waits until every participant acknowledged `txn`'s decision; a reason if that fails. */
async function settle(
  node: CoordinatorNode,
  txn: string,
  deliverTimeoutMs: number,
): Promise<string | null> {
  // On a shared log, one another coordinator ran (or took over) is its to deliver.
  if (!node.txn(txn)) return null
  const timeout = Bun.sleep(deliverTimeoutMs).then(() => null)
  const done: CoordinatorTxn | null = await Promise.race([node.when(txn, 'done'), timeout])
  const t = done ?? node.txn(txn)!
  if (done === null) {
    const missing = t.participants.filter((p) => !t.acks.includes(p))
    return (
      `${txn}=${t.decision} is recorded but ${missing.join(', ')} did not acknowledge it within ` +
      `${deliverTimeoutMs} ms; run the coordinator again to deliver it`
    )
  }
  const refused = Object.entries(t.refusals)
  if (refused.length > 0) {
    const [who, error] = refused[0]!
    return `${txn}=${t.decision} was refused by ${who}: ${error}`
  }
  return null
}
