// The participant's shell around the core: it owns the store (data and durable log), the
// state.txt view and the resource checks, and carries out the core's actions in order. It never
// sets a transaction's state itself: every result (a verdict, a failed write, an answer from
// whoever it asked in doubt) goes back into the core as an event.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { FileView, sweepTempFiles } from '../store/atomic-file.ts'
import { lockDir, type DirLock } from '../store/dir-lock.ts'
import {
  canonical,
  parseVotes,
  participantFold,
  participantStep as realParticipantStep,
  recoverParticipant,
  sqlOps,
  unknownTxn,
  voteFromFile,
  defaultParticipantEnv,
  type Backoff,
  type ParticipantEnv,
  type ParticipantAction,
  type ParticipantEvent,
  type ParticipantRecord,
  type PeerReport,
  type PersistAction,
  type Prng,
  type Json,
  type Op,
  type ParticipantTxn,
  type PrepareContext,
  type Reply,
  type VotesFile,
} from '../core/index.ts'
import { failpoint } from '../store/failpoint.ts'
import { KeyedQueue } from './keyed-queue.ts'
import { StateLines } from './state-lines.ts'
import { NO_VIEW, bunPorts, type Ports, type View } from './ports.ts'
import { DEFAULT_RETAIN, Retention } from './retention.ts'
import type { ParticipantObserver } from './observe.ts'
import { SqliteStore } from '../store/sqlite-store.ts'
import type { ParticipantStore, Verdict } from '../store/store.ts'
import { decodeCoordinatorAnswer, decodePeerState } from '../wire/in-doubt.ts'
import { decodeReply, type Trusted, type TrustedContext } from '../wire/participant.ts'

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
  /** Between questions in doubt that nobody could answer. */
  backoff?: Backoff
  /** Where data and log live; SQLite in `dir` by default. */
  store?: ParticipantStore
  /** Where state.txt is shown; a file in `dir` by default; false: nowhere (a service with
   * millions of transactions, whose view would hold them all). */
  view?: ((render: () => string) => View) | false
  /** How many finished transactions stay in memory and in the live log (see ./retention.ts). */
  retain?: number
  /** Clock, timers and network; Bun's by default. */
  ports?: Ports
  /** The protocol's step function: the real core, or a broken variant in the simulator. */
  step?: typeof realParticipantStep
  /** Whom it may ask in doubt (`--coordinator`, `--peer`); by default whom each prepare names. */
  trusted?: Trusted
  /** Accept `sql` operations (`--allow-sql`); the store must run them (PostgreSQL's). */
  allowSql?: boolean
}

/** A transaction that has been prepared longer than the in-doubt limit, for `/status`. */
export type InDoubt = { txn: string; waitedMs: number; asks: number; coordinator: string | null }

export class ParticipantNode {
  txns = new Map<string, ParticipantTxn>()
  readonly store: ParticipantStore
  readonly ports: Ports
  readonly trusted: Trusted
  readonly allowSql: boolean
  readonly #view: View
  readonly #lines = new StateLines()
  readonly #votes: VotesFile | null
  readonly #env: ParticipantEnv
  readonly #step: typeof realParticipantStep
  /** Each transaction's events are handled one at a time. */
  readonly #queue = new KeyedQueue()
  /** The transactions now prepared: the only ones the in-doubt clock looks at. */
  readonly #prepared = new Set<string>()
  #stopClock: (() => void) | null = null
  #lock: DirLock | null = null
  readonly #retention: Retention
  /** Who watches this node (its metrics): told of every durable record and message received. */
  readonly observers: ParticipantObserver[] = []

  constructor(
    readonly dir: string,
    votes: VotesFile | null,
    private readonly options: ParticipantNodeOptions = {},
  ) {
    this.store = options.store ?? new SqliteStore(dir)
    this.ports = options.ports ?? bunPorts
    this.trusted = options.trusted ?? { coordinators: [], peers: [] }
    this.allowSql = options.allowSql === true
    if (this.allowSql && this.store.sql !== true)
      throw new Error('--allow-sql needs a store that runs SQL: a PostgreSQL --store')
    this.#env = {
      ...defaultParticipantEnv,
      inDoubtAfterMs: options.inDoubtAfterMs ?? defaultParticipantEnv.inDoubtAfterMs,
      prng: options.prng ?? Math.random,
      backoff: options.backoff ?? defaultParticipantEnv.backoff,
      onePhase: this.store.onePhase,
      threePhase: this.store.threePhase === true,
    }
    this.#step = options.step ?? realParticipantStep
    this.#votes = votes
    const render = () => this.#lines.render()
    this.#retention = new Retention(options.retain ?? DEFAULT_RETAIN, (txn) => this.#fold(txn))
    if (typeof options.view !== 'function') {
      // A node that keeps its view or its data in `dir` owns it: one node per directory.
      this.#lock = lockDir(dir, 'participant')
      sweepTempFiles(dir)
    }
    if (options.view === false) this.#view = NO_VIEW
    else if (options.view) this.#view = options.view(render)
    else this.#view = new FileView(join(dir, 'state.txt'), render)
  }

  /** Rewrites state.txt from the log (a crash between log and view loses nothing) and starts
   * the in-doubt clock. */
  async start(): Promise<void> {
    const records = await this.store.load()
    this.txns = recoverParticipant(records, this.ports.now(), this.#env)
    for (const t of this.txns.values()) this.#set(t)
    if (this.options.view !== false) this.#show(records)
    for (const t of this.txns.values()) if (participantFold(t)) this.#retention.finished(t.txn)
    await this.#view.refresh()
    this.#stopClock = this.ports.every(this.options.tickMs ?? 50, () => this.#tick())
  }

  /** Every outcome in the log's history, folded or live, goes into state.txt (the live
   * `records` alone, from a store that keeps no checkpoints). */
  #show(records: ParticipantRecord[]): void {
    const checkpoints = this.store.checkpoints
    // In any order: state.txt is sorted by id.
    if (checkpoints?.outcomes) return checkpoints.outcomes((t, o) => this.#lines.set(t, o), false)
    for (const r of checkpoints?.history() ?? records) {
      if (r.state === 'committed' || r.state === 'aborted') this.#lines.set(r.txn, r.state)
    }
  }

  /** What this participant knows of `txn`: in memory, rebuilt from its folded record, or
   * nothing (unknown). */
  state(txn: string): ParticipantTxn {
    const current = this.txns.get(txn)
    if (current !== undefined) return current
    const folded = this.store.checkpoints?.folded(txn)
    if (folded === undefined) return unknownTxn(txn)
    return recoverParticipant([folded], this.ports.now(), this.#env).get(txn)!
  }

  /** Handles a prepare request that carries `ops` (the data work this participant guards). */
  prepare(
    txn: string,
    ops: readonly Op[],
    context: TrustedContext = {},
    waitForView = true,
    onePhase = false,
  ): Promise<Reply> {
    const now = this.ports.now()
    // Without the view to wait for (a batch), an outcome record may share a later flush.
    const shareFlush = !waitForView
    const opsDigest = digestOf(ops)
    const event = { type: 'prepare', txn, now, ops, ...context, shareFlush, opsDigest } as const
    return this.handle(onePhase ? { ...event, onePhase } : event, waitForView)
  }

  /** Handles one event after every earlier event of the same transaction; resolves to the reply,
   * which is sent only after everything it depends on is durable. With `waitForView` (the
   * classic endpoints) an outcome is answered only once state.txt shows it too; without (a
   * batch) once it is in the log, with state.txt following moments later. */
  async handle(event: ParticipantEvent, waitForView = true): Promise<Reply> {
    // A peer's question about a transaction we are prepared on is answered at once: the core's
    // `uncertain` changes nothing, and waiting would deadlock two participants in doubt asking
    // each other while each holds its transaction for its own question.
    const current = event.type === 'decision-request' ? this.state(event.txn) : null
    if (current?.state === 'prepared') return replyOf(this.#step(current, event, this.#env)[1])!
    const reply = await this.#queue.run(event.txn, () => this.#run(event))
    if (reply === null) throw new Error(`assertion: no reply to ${event.type} ${event.txn}`)
    const decided = reply.kind === 'outcome' || (reply.kind === 'vote' && reply.vote === 'no')
    if (waitForView && decided) await this.#view.refresh()
    return reply
  }

  /** One step of the core, its actions carried out in order; what they report (a verdict, a
   * failed write, an answer) is the core's next event, handled before any other event of this
   * transaction. */
  async #run(event: ParticipantEvent): Promise<Reply | null> {
    const [next, actions] = this.#step(this.state(event.txn), event, this.#env)
    this.#set(next)
    let reply: Reply | null = null
    for (const action of actions) {
      const result = await this.#carryOut(action)
      if (result !== null) return this.#run(result)
      if (action.type === 'reply') reply = action.reply
    }
    return reply
  }

  /** Carries out one action; the event it results in, if any. */
  async #carryOut(action: ParticipantAction): Promise<ParticipantEvent | null> {
    switch (action.type) {
      case 'check': {
        const verdict = await this.#check(action)
        const { txn, readOnly, onePhase, shareFlush } = action
        const now = this.ports.now()
        return { type: 'checked', txn, now, ...verdict, ...{ readOnly, onePhase, shareFlush } }
      }
      case 'persist':
        return this.#persist(action)
      case 'discard':
        await this.store.discard(action.txn)
        return null
      case 'ask-coordinator':
        return this.#askCoordinator(action.txn, action.coordinator)
      case 'ask-peers':
        return this.#askPeers(action.txn, action.peers)
      case 'ask-states':
      case 'send-pre':
      case 'tell-outcome':
        // In the background: the answers come back as an event of their own, so this
        // transaction's queue stays free for the messages of other terminators meanwhile.
        void this.#terminate(action).catch((error) => this.ports.warn(`${action.txn}: ${error}`))
        return null
      case 'reply':
        return null
    }
  }

  /** Carries out a step of three-phase termination (lib/core/three-phase.ts) over the network. */
  async #terminate(action: TerminationAction): Promise<void> {
    const { txn } = action
    const post = (peer: string, path: string, body: object) =>
      this.ports.request('POST', `${peer}/${path}`, body, this.#requestMs)
    if (action.type === 'tell-outcome') {
      await Promise.all(action.to.map((peer) => post(peer, action.decision, { txn })))
      return
    }
    const { attempt } = action
    if (action.type === 'ask-states') {
      const asked = action.peers.map(async (peer) => {
        const w = await post(peer, 'state-request', { txn, attempt })
        return peerReport(peer, w === null ? null : decodeReply(txn, w.status, w.body))
      })
      const reports = await Promise.all(asked)
      return this.#internal({ type: 'state-reports', txn, attempt, reports, now: this.ports.now() })
    }
    const path = action.decision === 'commit' ? 'precommit' : 'preabort'
    const moved = action.to.map(async (peer) => {
      const w = await post(peer, path, { txn, attempt })
      const reply = w === null ? null : decodeReply(txn, w.status, w.body)
      return reply?.kind === 'pre' && reply.attempt === attempt ? peer : null
    })
    const acked = (await Promise.all(moved)).filter((p): p is string => p !== null)
    await this.#internal({ type: 'pre-acks', txn, attempt, acked, now: this.ports.now() })
  }

  /** An event of our own (no request waits for a reply), in its transaction's turn. */
  async #internal(event: ParticipantEvent): Promise<void> {
    await this.#queue.run(event.txn, () => this.#run(event))
  }

  #set(next: ParticipantTxn): void {
    if (waiting(next)) this.#prepared.add(next.txn)
    else this.#prepared.delete(next.txn)
    // An unknown transaction is kept only while it carries what its prepare told (whom to ask,
    // the digest of its operations) for the check that follows.
    const bare = next.coordinator === null && next.peers.length === 0 && next.digest === null
    if (next.state === 'unknown' && bare) this.txns.delete(next.txn)
    else this.txns.set(next.txn, next)
  }

  /** Null once the record is durable; a `persist-failed` event when the store failed. */
  async #persist(action: PersistAction): Promise<ParticipantEvent | null> {
    const { record } = action
    try {
      await this.store.persist(record, action.effect, action.shareFlush === true)
    } catch (error) {
      const now = this.ports.now()
      this.ports.warn(`participant: ${record.txn}: ${record.state} not recorded: ${error}`)
      return { type: 'persist-failed', txn: record.txn, action, error: messageOf(error), now }
    }
    const preparedAt = this.txns.get(record.txn)?.preparedAt ?? null
    for (const o of this.observers) o.recorded?.(record, preparedAt)
    if (record.state === 'prepared') {
      failpoint('participant-after-vote-logged', record.txn)
      return null
    }
    if (record.state === 'precommitted' || record.state === 'preaborted') {
      failpoint('participant-after-precommit-logged', record.txn)
      return null
    }
    // The view shows only what the log holds: the line is added once the record is durable.
    if (this.options.view !== false) this.#lines.set(record.txn, record.state)
    this.#view.refreshSoon()
    failpoint('participant-after-outcome-logged', record.txn)
    this.#retention.finished(record.txn)
    return null
  }

  /** Folds finished `txn` out of the log and out of memory (see ./retention.ts). */
  #fold(txn: string): void {
    const state = this.txns.get(txn)
    const record = state && participantFold(state)
    if (!record || !this.store.checkpoints) return
    this.store.checkpoints.fold(txn, record)
    this.txns.delete(txn)
  }

  /** The resource's own verdict: votes.txt, when present, can only say no; then the store
   * checks the operations against the data and takes their locks. */
  async #check(action: { txn: string; ops: readonly Op[]; context: PrepareContext }) {
    const fromFile = this.#votes === null ? null : voteFromFile(this.#votes, action.txn)
    if (fromFile?.vote === 'no') return fromFile as Verdict
    if (sqlOps(action.ops).length > 0 && (!this.allowSql || this.store.sql !== true))
      return { vote: 'no', reason: 'this participant runs no sql operations' } as Verdict
    return this.store.check(action.txn, action.ops, action.context)
  }

  #tick(): void {
    const now = this.ports.now()
    for (const txn of this.#prepared) {
      const askAt = this.txns.get(txn)?.askAt
      if (askAt != null && askAt <= now) {
        void this.#queue
          .run(txn, () => this.#run({ type: 'tick', txn, now }))
          .catch((error) => this.ports.warn(`in doubt about ${txn}: ${error}`))
      }
    }
  }

  async #askCoordinator(txn: string, coordinator: string): Promise<ParticipantEvent> {
    const url = `${coordinator}/transactions/${txn}`
    const reply = await this.ports.request('GET', url, null, this.#requestMs)
    return {
      type: 'coordinator-answer',
      txn,
      answer: decodeCoordinatorAnswer(reply),
      now: this.ports.now(),
    }
  }

  /** Asks every peer at once. A peer that never voted aborts before it answers, so that it can
   * never vote yes afterwards: a plain read could not promise that. */
  async #askPeers(txn: string, peers: readonly string[]): Promise<ParticipantEvent> {
    const ask = (peer: string) =>
      this.ports.request('POST', `${peer}/decision-request`, { txn }, this.#requestMs)
    const states = (await Promise.all(peers.map(ask))).map(decodePeerState)
    return { type: 'peer-answers', txn, states, now: this.ports.now() }
  }

  get #requestMs(): number {
    return this.options.requestMs ?? 2000
  }

  /** Prepared transactions past the in-doubt limit, longest waiting first. */
  inDoubt(now = this.ports.now()): InDoubt[] {
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
    for (const t of this.txns.values()) {
      if (t.state !== 'unknown') counts[t.state] = (counts[t.state] ?? 0) + 1
    }
    return counts
  }

  async close(): Promise<void> {
    this.#stopClock?.()
    this.#stopClock = null
    await this.#view.settle().catch(() => {})
    await this.store.close()
    this.#lock?.release()
  }
}

/** Waiting for an outcome: prepared, or (three-phase) precommitted or preaborted. */
function waiting(t: ParticipantTxn): boolean {
  return t.state === 'prepared' || t.state === 'precommitted' || t.state === 'preaborted'
}

type TerminationAction = Extract<
  ParticipantAction,
  { type: 'ask-states' | 'send-pre' | 'tell-outcome' }
>

/** A peer's answer to a state request, as the core takes it. */
function peerReport(peer: string, reply: Reply | null): PeerReport {
  if (reply?.kind === 'report') return { peer, report: reply.report }
  if (reply?.kind === 'superseded') return { peer, superseded: reply.lastElected }
  return { peer, report: null }
}

/** SHA-256 of the operations in canonical JSON: what a repeated prepare is compared by. */
function digestOf(ops: readonly Op[]): string {
  // Bun.SHA256.hash: the digest a CryptoHasher gives (logs keep it), a third of its time.
  return Bun.SHA256.hash(canonical(ops as unknown as Json), 'hex')
}

function replyOf(actions: ParticipantAction[]): Reply | null {
  for (const a of actions) if (a.type === 'reply') return a.reply
  return null
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
