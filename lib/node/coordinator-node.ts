// The coordinator's shell around the core: it owns the durable log, the decision.txt view, the
// clock and the network, and carries out the core's actions in order (persist before send). It
// never sets a transaction's state itself: a record that became durable, a write that failed
// and every answer go back into the core as events.
import { join } from 'node:path'
import { FileView, sweepTempFiles } from '../store/atomic-file.ts'
import { lockDir, type DirLock } from '../store/dir-lock.ts'
import {
  begin as realBegin,
  coordinatorAnswer,
  coordinatorFold,
  coordinatorStep as realCoordinatorStep,
  defaultBackoff,
  recoverCoordinator,
  resume as realResume,
  wakeAt,
  type Backoff,
  type CoordinatorAction,
  type CoordinatorAnswer,
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
import type { CoordinatorLog, SharedLog } from '../store/store.ts'
import { NO_VIEW, httpPorts, type Ports, type View } from './ports.ts'
import type { CoordinatorObserver } from './observe.ts'
import { DEFAULT_RETAIN, Retention } from './retention.ts'

export const COORDINATOR_DB = 'coordinator.db'

/** The protocol's functions: the real core, or a broken variant in the simulator. */
export type CoordinatorCore = {
  begin: typeof realBegin
  step: typeof realCoordinatorStep
  resume: typeof realResume
}

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
  /** Send even single messages as batches (the service does; see lib/node/sender.ts). */
  alwaysBatch?: boolean
  /** Aborts neither forced nor acknowledged (the service does; see CoordinatorEnv). */
  lazyAborts?: boolean
  /** One participant: one phase (the service does; see CoordinatorEnv). */
  onePhase?: boolean
  /** After a restart, prepare again what was begun and never decided (batch mode does). */
  retryUndecided?: boolean
  /** The log; SQLite in `dir` by default. */
  log?: CoordinatorLog<CoordinatorRecord>
  /** A log shared with other coordinators under leases (PostgreSQL, `--log-db`); it is then
   * the log too. See `#renewAndTakeOver` and lib/store/pg-log.ts. */
  shared?: SharedLog<CoordinatorRecord>
  /** Where decision.txt is shown; a file in `dir` by default; false: nowhere (a service with
   * millions of transactions, whose view would hold them all). */
  view?: ((render: () => string) => View) | false
  /** How many finished transactions stay in memory and in the live log (see ./retention.ts). */
  retain?: number
  /** Clock, timers and network; Bun's by default. */
  ports?: Ports
  core?: CoordinatorCore
}

type Waiter = { phase: 'decided' | 'done'; resolve: (t: CoordinatorTxn) => void }

export class CoordinatorNode {
  readonly txns: Map<string, CoordinatorTxn>
  readonly log: CoordinatorLog<CoordinatorRecord>
  readonly ports: Ports
  /** `decision.txt`: `txn=commit|abort`, one line per decided transaction, in decision order. */
  #decisions = ''
  readonly #view: View
  readonly #env: CoordinatorEnv
  readonly #core: CoordinatorCore
  readonly #sender: MessageSender
  readonly #queue = new KeyedQueue()
  readonly #waiters = new Map<string, Waiter[]>()
  #stopClock: (() => void) | null = null
  #lock: DirLock | null = null
  /** When each transaction not yet done next needs a tick (see `wakeAt`). */
  readonly #wakeAt = new Map<string, number>()
  readonly #retention: Retention
  /** Claims on the shared log still being written, so one id is claimed once. */
  readonly #claims = new Map<string, Promise<boolean | 'orphan'>>()
  #leasing = false
  /** Whether this coordinator may own a transaction on the shared log that it does not run: a
   * takeover or a claim failed, and may have been written all the same (its answer lost). */
  #unsure = false
  /** Who watches this node (its metrics, the dashboard): told of every change, send and answer. */
  readonly observers: CoordinatorObserver[] = []

  constructor(readonly options: CoordinatorOptions) {
    // Its own by default: closing the node closes the channels it opened, and only those.
    this.ports = options.ports ?? httpPorts()
    // A node that keeps its log or view in `dir` owns it: one node per directory.
    if (!options.log || typeof options.view !== 'function') {
      this.#lock = lockDir(options.dir, 'coordinator')
      sweepTempFiles(options.dir)
    }
    this.log = options.shared ?? options.log ?? openLog(options.dir)
    const records = this.log.records()
    this.txns = recoverCoordinator(records, this.ports.now())
    if (options.view !== false) this.#decisions = decisionLines(this.log)
    this.#env = {
      prng: options.prng ?? Math.random,
      timeoutMs: options.timeoutMs ?? 10_000,
      backoff: options.backoff ?? defaultBackoff,
      lazyAborts: options.lazyAborts ?? false,
      onePhase: options.onePhase ?? false,
      retryUndecided: options.retryUndecided ?? false,
      sharedLog: options.shared !== undefined,
    }
    this.#core = options.core ?? { begin: realBegin, step: realCoordinatorStep, resume: realResume }
    const requestMs = options.requestMs ?? 5_000
    this.#sender = new MessageSender(requestMs, options.alwaysBatch ?? false, this.ports)
    const render = () => this.#decisions
    if (options.view === false) this.#view = NO_VIEW
    else if (options.view) this.#view = options.view(render)
    else this.#view = new FileView(join(options.dir, 'decision.txt'), render)
    this.#retention = new Retention(options.retain ?? DEFAULT_RETAIN, (txn) => this.#fold(txn))
    for (const t of this.txns.values()) this.#finishing(t)
  }

  /** Rebuilds decision.txt, re-delivers every unacknowledged decision and aborts every
   * transaction the log shows still preparing (presumed abort); then starts the clock. */
  async start(): Promise<void> {
    await this.#view.refresh()
    this.#resume(this.txns.values())
    const tick = this.ports.every(this.options.tickMs ?? 5, () => this.#tick())
    const shared = this.options.shared
    const lease = shared && this.ports.every(shared.leaseMs / 3, () => this.#renewAndTakeOver())
    if (shared) await this.#renewAndTakeOver()
    this.#stopClock = () => {
      tick()
      lease?.()
    }
  }

  #resume(txns: Iterable<CoordinatorTxn>): void {
    for (const txn of txns) {
      if (txn.phase !== 'done') {
        const resumed = this.#core.resume(txn, this.#env, this.ports.now())
        void this.#queue.run(txn.txn, () => this.#apply(resumed))
      }
    }
  }

  /** Renews this coordinator's lease on the shared log, takes over those that ran out and
   * finishes their transactions as a restarted coordinator would (its own recovery: presumed
   * abort for the undecided, the decided delivered), and names the others in its prepares. */
  async #renewAndTakeOver(): Promise<void> {
    const shared = this.options.shared!
    if (this.#leasing) return
    this.#leasing = true
    try {
      await shared.renew()
      // A coordinator nobody can ask (batch mode) takes over nobody.
      this.#adopt(this.options.selfUrl ? await this.#takeOver(shared) : [])
      const self = this.options.selfUrl
      // Batch coordinators on the log are named by their directory: nobody asks them.
      const urls = (await shared.members()).map((m) => m.url).filter((u) => /^https?:/.test(u))
      this.#sender.others = urls.filter((u) => u !== self)
    } catch (error) {
      this.ports.warn(`coordinator: the lease on the shared log: ${error}`)
    } finally {
      this.#leasing = false
    }
  }

  /** Takes on transactions from their records on the shared log, as a restarted coordinator
   * would (presumed abort for the undecided, the decided delivered); not those it has. */
  #adopt(records: CoordinatorRecord[]): void {
    const adopted = recoverCoordinator(records, this.ports.now())
    const fresh = [...adopted.values()].filter((t) => !this.txns.has(t.txn))
    for (const t of fresh) this.#set(t)
    for (const t of fresh) this.#finishing(t)
    this.#resume(fresh)
  }

  /** The records of what the shared log now says is this coordinator's: what it took over and,
   * when unsure, any unfinished transaction it owns there but does not run. Without that, one
   * whose takeover or claim was written while the answer was lost would wait for ever: its
   * participants prepared, its clients told nothing (the owner, alive, is never taken over). */
  async #takeOver(shared: SharedLog<CoordinatorRecord>): Promise<CoordinatorRecord[]> {
    const unsure = this.#unsure
    this.#unsure = false
    try {
      const taken = await shared.takeOver()
      if (!unsure) return taken
      const known = (txn: string) =>
        this.txns.has(txn) || this.#claims.has(txn) || taken.some((r) => r.txn === txn)
      const lost = (await shared.unfinished()).filter((txn) => !known(txn))
      for (const txn of lost) taken.push(...(await shared.lookup(txn)))
      return taken
    } catch (error) {
      this.#unsure = true
      throw error
    }
  }

  /** Starts `txn` unless the log already knows it; resolves once it is decided. */
  run(
    txn: string,
    participants: readonly string[],
    ops: Readonly<Record<string, readonly Op[]>> = {},
    protocol: '2pc' | '3pc' = '2pc',
  ): Promise<CoordinatorTxn> {
    if (this.options.shared && !this.txns.has(txn)) {
      return this.#runShared(txn, participants, ops, protocol)
    }
    if (!this.txn(txn)) {
      const now = this.ports.now()
      const started = this.#core.begin(txn, participants, now, this.#env, ops, protocol)
      this.#set(started[0])
      void this.#queue.run(txn, () => this.#apply(started))
    }
    return this.when(txn, 'decided')
  }

  /** On a shared log a transaction is claimed before it begins; one the log already has is
   * another coordinator's (or was this one's before a restart): its outcome is read from the
   * log once decided there. */
  async #runShared(
    txn: string,
    participants: readonly string[],
    ops: Readonly<Record<string, readonly Op[]>>,
    protocol: '2pc' | '3pc',
  ): Promise<CoordinatorTxn> {
    let claim = this.#claims.get(txn)
    if (!claim) {
      claim = this.options.shared!.claim(txn, participants, protocol)
      this.#claims.set(txn, claim)
      // Refused, or failed (perhaps written all the same): the log may hold a claim of this
      // coordinator that it does not run; the next renewal looks (`#takeOver`).
      const unsure = () => void (this.#unsure = true)
      void claim.then((mine) => mine || unsure(), unsure).finally(() => this.#claims.delete(txn))
    }
    const mine = await claim
    // Its own claim, unfinished, that it never ran: recovered from the log, as after a restart.
    if (mine === 'orphan' && !this.txns.has(txn))
      this.#adopt(await this.options.shared!.lookup(txn))
    if (!mine && !this.txns.has(txn)) return this.#decidedElsewhere(txn)
    if (!this.txns.has(txn)) {
      const started = this.#core.begin(
        txn,
        participants,
        this.ports.now(),
        this.#env,
        ops,
        protocol,
      )
      this.#set(started[0])
      void this.#queue.run(txn, () => this.#apply(started))
    }
    return this.when(txn, 'decided')
  }

  /** Waits until the shared log holds a durable decision of `txn`. */
  async #decidedElsewhere(txn: string): Promise<CoordinatorTxn> {
    for (let attempt = 0; ; attempt++) {
      const known = await this.lookup(txn)
      if (known && known.logged && known.decision !== null) return known
      await this.ports.sleep(Math.min(500, 20 * 2 ** attempt))
    }
  }

  /** What the cluster knows of `txn`: this coordinator's memory, then the shared log (any
   * coordinator's records), rebuilt as a restarted coordinator would. */
  async lookup(txn: string): Promise<CoordinatorTxn | undefined> {
    const own = this.txn(txn)
    if (own || !this.options.shared) return own
    const records = await this.options.shared.lookup(txn)
    return recoverCoordinator(records, this.ports.now()).get(txn)
  }

  /** Resolves once `txn` has reached `phase` (its decision durable, or every ack received). */
  when(txn: string, phase: 'decided' | 'done'): Promise<CoordinatorTxn> {
    const current = this.txn(txn)
    if (!current) return Promise.reject(new Error(`unknown transaction ${txn}`))
    if (reached(current, phase)) return Promise.resolve(current)
    const { promise, resolve } = Promise.withResolvers<CoordinatorTxn>()
    this.#waiters.set(txn, [...(this.#waiters.get(txn) ?? []), { phase, resolve }])
    return promise
  }

  /** What this coordinator answers about `txn` (GET /transactions/:id): the core's answer. */
  answer(txn: string): CoordinatorAnswer {
    return coordinatorAnswer(this.txn(txn))
  }

  /** What this coordinator knows of `txn`: in memory, or rebuilt from its folded record. */
  txn(txn: string): CoordinatorTxn | undefined {
    const current = this.txns.get(txn)
    if (current !== undefined) return current
    const folded = this.log.checkpoints?.folded(txn)
    return folded && recoverCoordinator([folded], this.ports.now()).get(txn)
  }

  /** Resolves once decision.txt shows every decision logged so far. */
  flushView(): Promise<void> {
    return this.#view.refresh()
  }

  /** Steps `txn` with `event`; a folded transaction is done, and nothing changes it. */
  step(txn: string, event: CoordinatorEvent): Promise<void> {
    return this.#queue.run(txn, async () => {
      const current = this.txns.get(txn)
      if (current) await this.#apply(this.#core.step(current, event, this.#env))
    })
  }

  #tick(): void {
    const now = this.ports.now()
    for (const [txn, at] of this.#wakeAt) {
      if (at <= now) void this.step(txn, { type: 'tick', now })
    }
  }

  #set(next: CoordinatorTxn): void {
    const before = this.txns.get(next.txn)
    this.txns.set(next.txn, next)
    for (const o of this.observers) o.changed?.(before, next)
    const at = wakeAt(next)
    if (at === null) this.#wakeAt.delete(next.txn)
    else this.#wakeAt.set(next.txn, at)
  }

  /** Carries out a step: sends leave at once, a lazy record is written in the background, a
   * forced one is awaited before anything after it. Whatever the log reports is the core's
   * next event: `logged`, or `persist-failed`, which drops the rest of the step. */
  async #apply([next, actions]: [CoordinatorTxn, CoordinatorAction[]]): Promise<void> {
    this.#set(next)
    for (const action of actions) {
      if (action.type === 'send') this.#deliver(next.txn, action.to, action.message)
      else if (action.lazy) this.#persistLazily(action.record)
      else {
        const event = await this.#persist(action.record)
        const current = this.txns.get(next.txn)!
        const [after, more] = this.#core.step(current, event, this.#env)
        if (event.type === 'persist-failed') return this.#apply([after, more])
        this.#set(after)
      }
    }
    const state = this.txns.get(next.txn)!
    this.#notify(state)
    this.#finishing(state)
  }

  /** A finished transaction joins the retained ones; past `retain`, the oldest is folded. */
  #finishing(state: CoordinatorTxn): void {
    if (coordinatorFold(state) === null) return
    this.#retention.finished(state.txn)
  }

  #fold(txn: string): void {
    const state = this.txns.get(txn)
    const record = state && coordinatorFold(state)
    if (!record || !this.log.checkpoints) return
    this.log.checkpoints.fold(txn, record)
    this.txns.delete(txn)
  }

  async #persist(record: CoordinatorRecord, lazy = false): Promise<CoordinatorEvent> {
    try {
      await this.log.append(record, undefined, lazy)
    } catch (error) {
      this.ports.warn(`coordinator log: ${record.type} of ${record.txn} not written: ${error}`)
      return { type: 'persist-failed', record, lazy, now: this.ports.now() }
    }
    if (record.type === 'begin') failpoint('coordinator-after-begin-logged', record.txn)
    if (record.type === 'precommit') failpoint('coordinator-after-precommit-logged', record.txn)
    if (record.type === 'decision') {
      // Without a view nothing is kept of it: the folded record is what stays.
      if (this.options.view !== false) this.#decisions += `${record.txn}=${record.decision}\n`
      this.#view.refreshSoon()
      failpoint('coordinator-after-decision-logged', record.txn)
    }
    return { type: 'logged', record }
  }

  /** A lazy record: nothing waits for it, but its result still reaches the core (a lazy abort
   * decision is answered only once durable; one that failed is written again). */
  #persistLazily(record: CoordinatorRecord): void {
    void this.#persist(record, true).then((event) => this.step(record.txn, event))
  }

  #notify(state: CoordinatorTxn): void {
    const waiters = this.#waiters.get(state.txn)
    if (!waiters) return
    const still = waiters.filter((w) => !reached(state, w.phase))
    for (const w of waiters) if (reached(state, w.phase)) w.resolve(state)
    if (still.length > 0) this.#waiters.set(state.txn, still)
    else this.#waiters.delete(state.txn)
  }

  /** One HTTP attempt; its outcome goes back into the core as an event. Retries are the core's. */
  #deliver(txn: string, to: string, message: CoordinatorMessage): void {
    for (const o of this.observers) o.sent?.(to, message)
    this.#sender.send(to, message, this.options.selfUrl, (event) => {
      for (const o of this.observers) o.answered?.(txn, event)
      if (event.type === 'ack' && this.txns.get(txn)?.phase === 'deciding') {
        failpoint('coordinator-after-first-ack', txn)
      }
      if (event.type === 'pre-ack' && this.txns.get(txn)?.phase === 'precommitting') {
        failpoint('coordinator-after-first-precommit-ack', txn)
      }
      this.step(txn, event).catch((error) => {
        this.ports.warn(`coordinator: ${txn}: ${event.type} from ${to} not carried out: ${error}`)
      })
    })
  }

  /** HTTP requests sent to participants, for benchmarks. */
  get requests(): number {
    return this.#sender.requests
  }

  /** Stops the clock and closes the log; resolves once a log in a database is closed. */
  close(): Promise<void> {
    this.#stopClock?.()
    this.#stopClock = null
    this.ports.close?.()
    void this.#view.settle().catch(() => {})
    // A SQLite log closes at once, and so is the directory free at once (a restart in the same
    // process may follow).
    const closing = this.log.close()
    if (closing instanceof Promise) return closing.finally(() => this.#lock?.release())
    this.#lock?.release()
    return Promise.resolve()
  }
}

/** The coordinator's SQLite log: a folded transaction keeps the place of its decision, so that
 * decision.txt, rebuilt from the history, keeps decision order. */
function openLog(dir: string): DurableLog<CoordinatorRecord> {
  const anchor = (r: CoordinatorRecord) => r.type === 'decision'
  const outcome = (r: CoordinatorRecord) => (r.type === 'decision' ? r.decision : null)
  return new DurableLog<CoordinatorRecord>(join(dir, COORDINATOR_DB), { anchor, outcome })
}

/** decision.txt's lines from the log's history, one per transaction, in decision order: on a
 * shared log a decision whose write committed though its answer was lost with the connection is
 * written again, so it may be there twice (always the same decision); `outcomes` gives each
 * once. */
function decisionLines(log: CoordinatorLog<CoordinatorRecord>): string {
  let text = ''
  const checkpoints = log.checkpoints
  if (checkpoints?.outcomes) {
    checkpoints.outcomes((txn, decision) => void (text += `${txn}=${decision}\n`))
    return text
  }
  const seen = new Set<string>()
  for (const r of checkpoints?.history() ?? log.records()) {
    if (r.type !== 'decision' || seen.has(r.txn)) continue
    seen.add(r.txn)
    text += `${r.txn}=${r.decision}\n`
  }
  return text
}

/** Decided means durable: an answer about a decision a crash could still undo is not given. */
function reached(state: CoordinatorTxn, phase: 'decided' | 'done'): boolean {
  const decided = state.logged && state.decision !== null
  return phase === 'decided' ? decided : decided && state.phase === 'done'
}
