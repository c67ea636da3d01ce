// The coordinator's shell around the core: it owns the durable log, the decision.txt view, the
// clock and the network, and carries out the core's actions in order (persist before send).
import { join } from 'node:path'
import { FileView, sweepTempFiles } from '../store/atomic-file.ts'
import {
  begin,
  coordinatorStep,
  defaultBackoff,
  recoverCoordinator,
  resume,
  wakeAt,
  type Backoff,
  type CoordinatorAction,
  type CoordinatorAnswer,
  type Decision,
  type CoordinatorEnv,
  type CoordinatorEvent,
  type CoordinatorMessage,
  type CoordinatorRecord,
  type CoordinatorTxn,
  type Op,
  type Prng,
} from '../core/index.ts'
import { failpoint } from '../store/failpoint.ts'
import { KeyedQueue } from './keyed-queue.ts'
import { MessageSender } from './sender.ts'
import { DurableLog } from '../store/log.ts'

export const COORDINATOR_DB = 'coordinator.db'

export type CoordinatorOptions = {
  dir: string
  /** How long prepare may take before a silent participant counts as `no`. */
  timeoutMs?: number
  /** How long one HTTP request may take before it counts as lost. */
  requestMs?: number
  backoff?: Backoff
  tickMs?: number
  prng?: Prng
  /** This coordinator's own URL, sent with prepare so participants can ask it later. */
  selfUrl?: string
  /** Send even single messages as batches (the service does; see lib/messages.ts). */
  alwaysBatch?: boolean
  /** Aborts neither forced nor acknowledged (the service does; see CoordinatorEnv). */
  presumedAbort?: boolean
  /** One participant: one phase (the service does; see CoordinatorEnv). */
  onePhase?: boolean
}

type Waiter = { phase: 'decided' | 'done'; resolve: (t: CoordinatorTxn) => void }

export class CoordinatorNode {
  readonly txns: Map<string, CoordinatorTxn>
  readonly log: DurableLog<CoordinatorRecord>
  /** Decisions on disk: the only ones anyone is told about (in memory one may still be
   * waiting for its flush, and a crash then would make it abort). */
  readonly #logged = new Map<string, Decision>()
  /** `decision.txt`: `txn=commit|abort`, one line per decided transaction, in decision order. */
  #decisions = ''
  readonly #view: FileView
  readonly #env: CoordinatorEnv
  readonly #sender: MessageSender
  readonly #queue = new KeyedQueue()
  readonly #waiters = new Map<string, Waiter[]>()
  #timer: Timer | null = null
  /** When each transaction not yet done next needs a tick (see `wakeAt`). */
  readonly #wakeAt = new Map<string, number | null>()

  constructor(readonly options: CoordinatorOptions) {
    sweepTempFiles(options.dir)
    this.log = new DurableLog<CoordinatorRecord>(join(options.dir, COORDINATOR_DB))
    const records = this.log.records()
    this.txns = recoverCoordinator(records)
    for (const r of records) {
      if (r.type !== 'decision') continue
      this.#logged.set(r.txn, r.decision)
      this.#decisions += `${r.txn}=${r.decision}\n`
    }
    this.#env = {
      prng: options.prng ?? Math.random,
      timeoutMs: options.timeoutMs ?? 10_000,
      backoff: options.backoff ?? defaultBackoff,
      presumedAbort: options.presumedAbort ?? false,
      onePhase: options.onePhase ?? false,
    }
    this.#sender = new MessageSender(options.requestMs ?? 5_000, options.alwaysBatch ?? false)
    this.#view = new FileView(join(options.dir, 'decision.txt'), () => this.#decisions)
  }

  /** Rebuilds decision.txt, re-delivers every unacknowledged decision and aborts every
   * transaction the log shows still preparing (presumed abort); then starts the clock. */
  async start(): Promise<void> {
    await this.#view.refresh()
    for (const txn of this.txns.values()) {
      if (txn.phase !== 'done')
        void this.#queue.run(txn.txn, () => this.#apply(resume(txn, this.#env)))
    }
    const tickMs = this.options.tickMs ?? 5
    this.#timer = setInterval(() => this.#tick(), tickMs)
  }

  /** Starts `txn` unless the log already knows it; resolves once it is decided. */
  run(
    txn: string,
    participants: readonly string[],
    ops: Readonly<Record<string, readonly Op[]>> = {},
  ): Promise<CoordinatorTxn> {
    if (!this.txns.has(txn)) {
      const started = begin(txn, participants, Date.now(), this.#env, ops)
      this.#set(started[0])
      void this.#queue.run(txn, () => this.#apply(started))
    }
    return this.when(txn, 'decided')
  }

  /** Resolves once `txn` has reached `phase` (its decision durable, or every ack received). */
  when(txn: string, phase: 'decided' | 'done'): Promise<CoordinatorTxn> {
    const current = this.txns.get(txn)
    if (!current) return Promise.reject(new Error(`unknown transaction ${txn}`))
    if (this.#reached(current, phase)) return Promise.resolve(current)
    const { promise, resolve } = Promise.withResolvers<CoordinatorTxn>()
    this.#waiters.set(txn, [...(this.#waiters.get(txn) ?? []), { phase, resolve }])
    return promise
  }

  /** What this coordinator answers about `txn` (GET /transactions/:id): only durable decisions;
   * `unknown` (no record at all) means abort under presumed abort. */
  answer(txn: string): CoordinatorAnswer {
    if (!this.txns.has(txn)) return 'unknown'
    return this.#logged.get(txn) ?? 'preparing'
  }

  /** Resolves once decision.txt shows every decision logged so far. */
  flushView(): Promise<void> {
    return this.#view.refresh()
  }

  step(txn: string, event: CoordinatorEvent): Promise<void> {
    return this.#queue.run(txn, async () => {
      const current = this.txns.get(txn)
      if (current) await this.#apply(coordinatorStep(current, event, this.#env))
    })
  }

  #tick(): void {
    const now = Date.now()
    for (const [txn, at] of this.#wakeAt) {
      if (at !== null && at <= now) void this.step(txn, { type: 'tick', now })
    }
  }

  #set(next: CoordinatorTxn): void {
    this.txns.set(next.txn, next)
    if (next.phase === 'done') this.#wakeAt.delete(next.txn)
    else this.#wakeAt.set(next.txn, wakeAt(next))
  }

  async #apply([next, actions]: [CoordinatorTxn, CoordinatorAction[]]): Promise<void> {
    this.#set(next)
    for (const action of actions) {
      if (action.type === 'send') this.#deliver(next.txn, action.to, action.message)
      else if (action.settled && action.record.type === 'decision') {
        // Durable at the participant already: it may be told before our own record is.
        this.#logged.set(action.record.txn, action.record.decision)
        void this.#persist(action.record, true).catch(logLost)
      } else if (action.lazy) void this.#persist(action.record, true).catch(logLost)
      else await this.#persist(action.record, false)
    }
    this.#notify(next)
  }

  async #persist(record: CoordinatorRecord, lazy: boolean): Promise<void> {
    await this.log.append(record, undefined, lazy)
    if (record.type === 'begin') failpoint('coordinator-after-begin-logged', record.txn)
    if (record.type === 'decision') {
      this.#logged.set(record.txn, record.decision)
      this.#decisions += `${record.txn}=${record.decision}\n`
      this.#view.refreshSoon()
      failpoint('coordinator-after-decision-logged', record.txn)
      // A lazy decision becomes durable after its step: whoever waits for it hears now.
      if (lazy) this.#notify(this.txns.get(record.txn)!)
    }
  }

  #notify(state: CoordinatorTxn): void {
    const waiters = this.#waiters.get(state.txn)
    if (!waiters) return
    const still = waiters.filter((w) => !this.#reached(state, w.phase))
    for (const w of waiters) if (this.#reached(state, w.phase)) w.resolve(state)
    if (still.length > 0) this.#waiters.set(state.txn, still)
    else this.#waiters.delete(state.txn)
  }

  /** One HTTP attempt; its outcome goes back into the core as an event. Retries are the core's. */
  #deliver(txn: string, to: string, message: CoordinatorMessage): void {
    this.#sender.send(to, message, this.options.selfUrl, (event) => {
      if (event.type === 'ack' && this.txns.get(txn)?.phase === 'deciding') {
        failpoint('coordinator-after-first-ack', txn)
      }
      this.step(txn, event).catch((error) => {
        console.error(`coordinator: ${txn}: ${event.type} from ${to} not carried out: ${error}`)
      })
    })
  }

  /** HTTP requests sent to participants, for benchmarks. */
  get requests(): number {
    return this.#sender.requests
  }

  close(): void {
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = null
    void this.#view.settle().catch(() => {})
    this.log.close()
  }

  /** Decided means durable: an answer about a decision a crash could still undo is not given. */
  #reached(state: CoordinatorTxn, phase: 'decided' | 'done'): boolean {
    const decided = this.#logged.has(state.txn)
    return phase === 'decided' ? decided : decided && state.phase === 'done'
  }
}

/** A lazy record that never reached the disk: the protocol recovers without it. */
function logLost(error: unknown): void {
  console.error(`coordinator log: a lazy record was not written: ${error}`)
}
