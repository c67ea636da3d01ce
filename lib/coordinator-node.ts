// The coordinator's shell around the core: it owns the durable log, the decision.txt view, the
// clock and the network, and carries out the core's actions in order (persist before send).
import { join } from 'node:path'
import { FileView, sweepTempFiles } from './atomic-file.ts'
import {
  begin,
  coordinatorStep,
  defaultBackoff,
  recoverCoordinator,
  resume,
  type Backoff,
  type CoordinatorAction,
  type CoordinatorEnv,
  type CoordinatorEvent,
  type CoordinatorMessage,
  type CoordinatorRecord,
  type CoordinatorTxn,
  type Op,
  type Prng,
} from './core.ts'
import { failpoint } from './failpoint.ts'
import { KeyedQueue } from './keyed-queue.ts'
import { DurableLog } from './log.ts'

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
}

type Waiter = { phase: 'decided' | 'done'; resolve: (t: CoordinatorTxn) => void }

/** `decision.txt`: `txn=commit|abort`, one line per decided transaction, in decision order. */
export function renderDecisionFile(
  order: readonly string[],
  txns: Map<string, CoordinatorTxn>,
): string {
  return order.map((txn) => `${txn}=${txns.get(txn)!.decision}\n`).join('')
}

export class CoordinatorNode {
  readonly txns: Map<string, CoordinatorTxn>
  readonly log: DurableLog<CoordinatorRecord>
  /** Transactions in the order their decisions were logged. */
  readonly decisionOrder: string[] = []
  readonly #view: FileView
  readonly #env: CoordinatorEnv
  readonly #requestMs: number
  readonly #queue = new KeyedQueue()
  readonly #waiters = new Map<string, Waiter[]>()
  #timer: Timer | null = null

  constructor(readonly options: CoordinatorOptions) {
    sweepTempFiles(options.dir)
    this.log = new DurableLog<CoordinatorRecord>(join(options.dir, COORDINATOR_DB))
    const records = this.log.records()
    this.txns = recoverCoordinator(records)
    for (const r of records) if (r.type === 'decision') this.decisionOrder.push(r.txn)
    this.#env = {
      prng: options.prng ?? Math.random,
      timeoutMs: options.timeoutMs ?? 10_000,
      backoff: options.backoff ?? defaultBackoff,
    }
    this.#requestMs = options.requestMs ?? 5_000
    this.#view = new FileView(join(options.dir, 'decision.txt'), () =>
      renderDecisionFile(this.decisionOrder, this.txns),
    )
  }

  /** Rebuilds decision.txt, re-delivers every unacknowledged decision and aborts every
   * transaction the log shows still preparing (presumed abort); then starts the clock. */
  async start(): Promise<void> {
    await this.#view.refresh()
    for (const txn of this.txns.values()) {
      if (txn.phase !== 'done') void this.#queue.run(txn.txn, () => this.#apply(resume(txn)))
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
      this.txns.set(txn, started[0])
      void this.#queue.run(txn, () => this.#apply(started))
    }
    return this.when(txn, 'decided')
  }

  /** Resolves once `txn` has reached `phase` (a decision logged, or every ack received). */
  when(txn: string, phase: 'decided' | 'done'): Promise<CoordinatorTxn> {
    const current = this.txns.get(txn)
    if (!current) return Promise.reject(new Error(`unknown transaction ${txn}`))
    if (reached(current, phase)) return Promise.resolve(current)
    const { promise, resolve } = Promise.withResolvers<CoordinatorTxn>()
    this.#waiters.set(txn, [...(this.#waiters.get(txn) ?? []), { phase, resolve }])
    return promise
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
    for (const t of this.txns.values()) {
      if (t.phase !== 'done') void this.step(t.txn, { type: 'tick', now })
    }
  }

  async #apply([next, actions]: [CoordinatorTxn, CoordinatorAction[]]): Promise<void> {
    this.txns.set(next.txn, next)
    for (const action of actions) {
      if (action.type === 'persist') await this.#persist(action.record)
      else void this.#deliver(next.txn, action.to, action.message)
    }
    this.#notify(next)
  }

  async #persist(record: CoordinatorRecord): Promise<void> {
    await this.log.append(record)
    if (record.type === 'begin') failpoint('coordinator-after-begin-logged', record.txn)
    if (record.type === 'decision') {
      this.decisionOrder.push(record.txn)
      void this.#view.refresh()
      failpoint('coordinator-after-decision-logged', record.txn)
    }
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
  async #deliver(txn: string, to: string, message: CoordinatorMessage): Promise<void> {
    const event = await sendMessage(to, message, {
      requestMs: this.#requestMs,
      coordinator: this.options.selfUrl,
    })
    if (event.type === 'ack' && this.txns.get(txn)?.phase === 'deciding') {
      failpoint('coordinator-after-first-ack', txn)
    }
    await this.step(txn, event)
  }

  close(): void {
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = null
    this.log.close()
  }
}

function reached(state: CoordinatorTxn, phase: 'decided' | 'done'): boolean {
  return phase === 'decided'
    ? state.decision !== null && state.phase !== 'preparing'
    : state.phase === 'done'
}

type SendOptions = { requestMs: number; coordinator?: string }

/** Sends one protocol message and turns whatever happens into the core's event. */
export async function sendMessage(
  to: string,
  message: CoordinatorMessage,
  options: SendOptions,
): Promise<CoordinatorEvent> {
  const path = message.type === 'prepare' ? 'prepare' : message.decision
  const body =
    message.type === 'prepare'
      ? {
          txn: message.txn,
          participants: message.participants,
          coordinator: options.coordinator,
          ops: message.ops,
        }
      : { txn: message.txn }
  let status: number
  let reply: Record<string, unknown> | null
  try {
    const response = await fetch(`${to}/${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(options.requestMs),
    })
    status = response.status
    reply = (await response.json().catch(() => null)) as Record<string, unknown> | null
  } catch {
    return { type: 'unreachable', to, now: Date.now() }
  }
  return eventOf(to, message, status, reply)
}

function eventOf(
  from: string,
  message: CoordinatorMessage,
  status: number,
  reply: Record<string, unknown> | null,
): CoordinatorEvent {
  const now = Date.now()
  const error = typeof reply?.error === 'string' ? reply.error : `HTTP ${status}`
  if (status >= 500 || status === 408 || status === 429)
    return { type: 'unreachable', to: from, now }
  if (message.type === 'prepare') {
    if (status === 200 && (reply?.vote === 'yes' || reply?.vote === 'no')) {
      const reason = typeof reply.reason === 'string' ? reply.reason : undefined
      return { type: 'vote', from, vote: reply.vote, reason, now }
    }
    // A participant that refuses the request or answers nonsense has not promised anything.
    return { type: 'vote', from, vote: 'no', reason: `refused prepare: ${error}`, now }
  }
  if (status === 200) return { type: 'ack', from, now }
  return { type: 'refused', from, error, now }
}
