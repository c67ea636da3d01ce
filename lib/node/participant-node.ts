// The participant's shell around the core: it owns the store (data and durable log), the
// state.txt view and the resource checks, and carries out the core's actions in order.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { FileView, sweepTempFiles } from '../store/atomic-file.ts'
import {
  parseVotes,
  participantStep,
  readsOnly,
  recoverParticipant,
  unknownTxn,
  voteFromFile,
  defaultParticipantEnv,
  type ParticipantEnv,
  type ParticipantAction,
  type ParticipantEvent,
  type Prng,
  type Op,
  type ParticipantRecord,
  type ParticipantTxn,
  type Reply,
  type Effect,
  type VotesFile,
} from '../core/index.ts'
import { failpoint } from '../store/failpoint.ts'
import { askOutcome } from './in-doubt.ts'
import { KeyedQueue } from './keyed-queue.ts'
import { StateLines } from './state-lines.ts'
import { SqliteStore } from '../store/sqlite-store.ts'
import type { ParticipantStore, PrepareContext, Verdict } from '../store/store.ts'

/** Reads `votes.txt` in `dir`: null when absent; throws naming the line when malformed. */
export function readVotesFile(dir: string): VotesFile | null {
  const path = join(dir, 'votes.txt')
  return existsSync(path) ? parseVotes(readFileSync(path, 'utf8')) : null
}

export type ParticipantNodeOptions = {
  /** How long a transaction may stay prepared before the participant asks about its outcome. */
  inDoubtAfterMs?: number
  /** How often the in-doubt clock is checked. */
  tickMs?: number
  /** How long one question to the coordinator or a peer may take. */
  requestMs?: number
  prng?: Prng
  /** Where data and log live; SQLite in `dir` by default. */
  store?: ParticipantStore
}

/** A transaction that has been prepared longer than the in-doubt limit, for `/status`. */
export type InDoubt = { txn: string; waitedMs: number; asks: number; coordinator: string | null }

export class ParticipantNode {
  txns = new Map<string, ParticipantTxn>()
  readonly store: ParticipantStore
  readonly #view: FileView
  readonly #lines = new StateLines()
  readonly #votes: VotesFile | null
  readonly #env: ParticipantEnv
  /** Each transaction's events are handled one at a time. */
  readonly #queue = new KeyedQueue()
  /** The transactions now prepared: the only ones the in-doubt clock looks at. */
  readonly #prepared = new Set<string>()
  /** Operations of prepare requests waiting for their check. */
  readonly #ops = new Map<string, readonly Op[]>()
  #timer: Timer | null = null

  constructor(
    readonly dir: string,
    votes: VotesFile | null,
    private readonly options: ParticipantNodeOptions = {},
  ) {
    sweepTempFiles(dir)
    this.#env = {
      ...defaultParticipantEnv,
      inDoubtAfterMs: options.inDoubtAfterMs ?? defaultParticipantEnv.inDoubtAfterMs,
      prng: options.prng ?? Math.random,
    }
    this.store = options.store ?? new SqliteStore(dir)
    this.#votes = votes
    this.#view = new FileView(join(dir, 'state.txt'), () => this.#lines.render())
  }

  /** Rewrites state.txt from the log (a crash between log and view loses nothing) and starts
   * the in-doubt clock. */
  async start(): Promise<void> {
    this.txns = recoverParticipant(await this.store.load(), this.#env)
    for (const t of this.txns.values()) {
      this.#set(t)
      if (t.state === 'committed' || t.state === 'aborted') this.#lines.set(t.txn, t.state)
    }
    await this.#view.refresh()
    this.#timer = setInterval(() => this.#tick(), this.options.tickMs ?? 50)
  }

  state(txn: string): ParticipantTxn {
    return this.txns.get(txn) ?? unknownTxn(txn)
  }

  /** Handles a prepare request that carries `ops` (the data work this participant guards). */
  async prepare(
    txn: string,
    ops: readonly Op[],
    context: { coordinator?: string; peers?: string[] } = {},
    waitForView = true,
    onePhase = false,
  ): Promise<Reply> {
    const reply = await this.#queue.run(txn, async () => {
      this.#ops.set(txn, ops)
      try {
        const event = { type: 'prepare', txn, now: Date.now(), ...context } as const
        return (await this.#run(onePhase ? { ...event, onePhase } : event))!
      } finally {
        this.#ops.delete(txn)
      }
    })
    return this.#afterView(reply, waitForView)
  }

  /** Waits until state.txt shows the outcome `reply` reports (a `no` vote is an abort). */
  async #afterView(reply: Reply, waitForView: boolean): Promise<Reply> {
    const decided = reply.kind === 'outcome' || (reply.kind === 'vote' && reply.vote === 'no')
    if (waitForView && decided) await this.#view.refresh()
    return reply
  }

  /** Handles one event after every earlier event of the same transaction; resolves to the reply,
   * which is sent only after everything it depends on is durable. With `waitForView` (the
   * classic endpoints) an outcome is answered only once state.txt shows it too; without (a
   * batch) once it is in the log, with state.txt following moments later. */
  async handle(event: ParticipantEvent, waitForView = true): Promise<Reply> {
    // A peer's question about a transaction we are prepared on is answered at once: `uncertain`
    // promises nothing, and waiting would deadlock two participants in doubt asking each other
    // while each holds its transaction for its own question.
    if (event.type === 'decision-request' && this.state(event.txn).state === 'prepared') {
      return { kind: 'uncertain', txn: event.txn }
    }
    const reply = await this.#queue.run(event.txn, () => this.#run(event, !waitForView))
    if (reply === null) throw new Error(`assertion: no reply to ${event.type} ${event.txn}`)
    return this.#afterView(reply, waitForView)
  }

  /** `shareFlush`: an outcome record may wait a moment for the next flush instead of forcing
   * its own (a batch's commits then share the fsync of the prepares that follow them); the
   * reply still waits until it is durable. */
  async #run(event: ParticipantEvent, shareFlush = false): Promise<Reply | null> {
    const previous = this.state(event.txn)
    const [next, actions] = participantStep(previous, event, this.#env)
    this.#set(next)
    try {
      return await this.#carryOut(event, actions, shareFlush)
    } catch (error) {
      // Nothing of this step reached the disk: forget it, so no later answer relies on it.
      this.#set(previous)
      // A failed prepare (or one-phase commit) lets go of the work its check took.
      const held = next.state === 'prepared' || next.state === 'committed'
      if (held && previous.state === 'unknown') await this.store.discard(event.txn)
      throw error
    }
  }

  async #carryOut(
    event: ParticipantEvent,
    actions: ParticipantAction[],
    shareFlush: boolean,
  ): Promise<Reply | null> {
    let reply: Reply | null = null
    for (const action of actions) {
      if (action.type === 'check') {
        const context = event.type === 'prepare' ? contextOf(event) : {}
        const checked = await this.#check(event.txn, context)
        const readOnly = readsOnly(this.#ops.get(event.txn))
        const onePhase = event.type === 'prepare' && event.onePhase === true && this.store.onePhase
        return this.#run({
          type: 'checked',
          txn: event.txn,
          now: Date.now(),
          ...checked,
          ...(readOnly ? { readOnly } : {}),
          ...(onePhase ? { onePhase } : {}),
        })
      }
      if (action.type === 'persist' && action.optional) await this.#persistIfYouCan(action)
      else if (action.type === 'persist') {
        const lazy = shareFlush && action.record.state !== 'prepared'
        await this.#persist(action.record, action.effect, lazy)
      }
      if (action.type === 'reply') reply = action.reply
      // The answer is acted on before any other event of this transaction: a prepare that
      // arrived meanwhile (a client retrying the id after the coordinator lost its lazy begin
      // record) must not get a `yes` from a participant just told `unknown`, which is abort.
      if (action.type === 'ask') return this.#run(await this.#ask(action))
    }
    return reply
  }

  #set(next: ParticipantTxn): void {
    if (next.state === 'prepared') this.#prepared.add(next.txn)
    else this.#prepared.delete(next.txn)
    if (next.state === 'unknown' && next.coordinator === null) this.txns.delete(next.txn)
    else this.txns.set(next.txn, next)
  }

  /** A record the protocol lets us lose: when the store is down, forget it and go on. */
  async #persistIfYouCan(action: ParticipantAction & { type: 'persist' }): Promise<void> {
    try {
      await this.#persist(action.record, action.effect)
    } catch {
      await this.store.discard(action.record.txn)
      this.#set(unknownTxn(action.record.txn))
    }
  }

  async #persist(record: ParticipantRecord, effect?: Effect, lazy = false): Promise<void> {
    await this.store.persist(record, effect, lazy)
    if (record.state === 'prepared') {
      failpoint('participant-after-vote-logged', record.txn)
      return
    }
    // The view shows only what the log holds: the line is added once the record is durable.
    this.#lines.set(record.txn, record.state)
    this.#view.refreshSoon()
    failpoint('participant-after-outcome-logged', record.txn)
  }

  /** The resource's own verdict on `txn`: votes.txt, when present, can only say no; then the
   * store checks the operations against the data and takes their locks. */
  async #check(txn: string, context: PrepareContext): Promise<Verdict> {
    const fromFile = this.#votes === null ? null : voteFromFile(this.#votes, txn)
    if (fromFile?.vote === 'no') return fromFile
    return this.store.check(txn, this.#ops.get(txn) ?? [], context)
  }

  #tick(): void {
    const now = Date.now()
    for (const txn of this.#prepared) {
      const askAt = this.txns.get(txn)?.askAt
      if (askAt != null && askAt <= now) {
        void this.#queue
          .run(txn, () => this.#run({ type: 'tick', txn, now }))
          .catch((error) => console.error(`in doubt about ${txn}: ${error}`))
      }
    }
  }

  /** Asks who might know the outcome; what it learns is the core's next event. */
  async #ask(action: ParticipantAction & { type: 'ask' }): Promise<ParticipantEvent> {
    const { txn, coordinator, peers } = action
    const requestMs = this.options.requestMs ?? 2000
    const decision = await askOutcome(txn, { coordinator, peers, requestMs })
    return decision === null
      ? { type: 'unresolved', txn, now: Date.now() }
      : { type: 'decide', txn, decision }
  }

  /** Prepared transactions past the in-doubt limit, longest waiting first. */
  inDoubt(now = Date.now()): InDoubt[] {
    const list: InDoubt[] = []
    for (const txn of this.#prepared) {
      const t = this.txns.get(txn)!
      const waitedMs = now - (t.preparedAt ?? now)
      if (waitedMs >= this.#env.inDoubtAfterMs) {
        list.push({ txn, waitedMs, asks: t.asks, coordinator: t.coordinator })
      }
    }
    return list.sort((a, b) => b.waitedMs - a.waitedMs)
  }

  counts(): Record<string, number> {
    const counts: Record<string, number> = { prepared: 0, committed: 0, aborted: 0 }
    for (const t of this.txns.values()) if (t.state !== 'unknown') counts[t.state]! += 1
    return counts
  }

  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = null
    await this.#view.settle().catch(() => {})
    await this.store.close()
  }
}

/** What a prepare tells a store about whom to ask in doubt. */
function contextOf(event: ParticipantEvent & { type: 'prepare' }): PrepareContext {
  return {
    ...(event.coordinator ? { coordinator: event.coordinator } : {}),
    ...(event.peers ? { peers: event.peers } : {}),
    ...(event.now !== undefined ? { at: event.now } : {}),
  }
}
