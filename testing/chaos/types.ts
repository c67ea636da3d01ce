// The shapes shared by the chaos run's parts: its options, its report, its nodes and outcomes.
import type { Subprocess } from 'bun'
import type { Transfer } from '../bank.ts'

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
  /** Start the cluster with a fresh secret, client tokens and mutual TLS: the clients then use
   * a token (and the certificate), the checks the secret. */
  secure?: boolean
  /** How many coordinator services; more than one shares a log in PostgreSQL (`--log-db`). */
  coordinators?: number
  /** The shared log's database; a throwaway PostgreSQL in the run's directory when absent (and
   * then the PostgreSQL server is killed and restarted too). Implies a shared log. */
  logDb?: string
  /** The coordinators' `--lease` on a shared log. */
  leaseMs?: number
}

export type Invariant = { name: string; ok: boolean; summary: string; details: string[] }

export type Report = {
  ok: boolean
  seed: number
  seconds: number
  accounts: number
  concurrency: number
  /** The cluster had a secret, client tokens and mutual TLS. */
  secure: boolean
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
  /** Coordinators on one log in PostgreSQL; null for one coordinator on its SQLite log. */
  shared: SharedReport | null
}

export type SharedReport = {
  coordinators: number
  /** `throwaway` (PostgreSQL started in the run's directory), or the URL given. */
  logDb: string
  leaseMs: number
  /** Coordinators taken over by another once their lease ran out (twophase_takeovers). */
  takeovers: number
  /** Coordinators that woke to find their lease taken over and stopped (exit 1), restarted. */
  fencings: number
}

export type NodeName = string

export type ChaosNode = {
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

export type ClientOutcome = Transfer & {
  decision: 'commit' | 'abort' | null
  how: 'reply' | 'retried' | 'unrecorded' | 'lost'
  error?: string
}
