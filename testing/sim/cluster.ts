// A whole cluster in one process, driven by one seed: one coordinator and 2-5 participants run
// the real protocol core over a simulated network that delays, reorders, drops and duplicates
// messages and cuts links, while nodes crash (losing all they did not persist) and restart from
// their persisted records. Virtual time drives every timeout and backoff.
import {
  begin as realBegin,
  coordinatorAnswer,
  coordinatorStep as realCoordinatorStep,
  outcomeFromCoordinator,
  outcomeFromPeers,
  participantStep as realParticipantStep,
  recoverCoordinator,
  recoverParticipant,
  resume,
  unknownTxn,
  wakeAt,
  readsOnly,
  type CoordinatorAction,
  type CoordinatorEnv,
  type CoordinatorEvent,
  type CoordinatorMessage,
  type CoordinatorRecord,
  type CoordinatorTxn,
  type Decision,
  type Json,
  type Op,
  type ParticipantAction,
  type ParticipantEnv,
  type ParticipantEvent,
  type ParticipantTxn,
  type Reply,
} from '../../lib/core/index.ts'
import { Invariants } from './invariants.ts'
import { random, type Random } from './prng.ts'
import { SimStore } from './store.ts'

export type Faults = {
  drop: number
  duplicate: number
  /** Per step: chance that a node crashes (it restarts after a while). */
  crash: number
  /** Per step: chance that a node is cut off from every other node (healed after a while). */
  partition: number
  /** Per persisted record: chance the node crashes right after it, before its next action. */
  crashAfterPersist: number
}

/** The protocol under test: the real core by default; the broken variants swap parts of it. */
export type Protocol = {
  begin: typeof realBegin
  coordinatorStep: typeof realCoordinatorStep
  participantStep: typeof realParticipantStep
  /** Runs a coordinator step's actions: in order by default (persist before send). */
  order: (actions: CoordinatorAction[]) => CoordinatorAction[]
  /** What a crash does to a node's persisted records: by default nothing. */
  onCrash: (records: unknown[]) => void
}

export const realProtocol: Protocol = {
  begin: realBegin,
  coordinatorStep: realCoordinatorStep,
  participantStep: realParticipantStep,
  order: (actions) => actions,
  onCrash: () => {},
}

export type Workload = {
  txn: string
  at: number
  ops: Record<string, readonly Op[]>
  no: string[]
}[]

export type SimConfig = {
  seed: number
  participants: number
  faults: Faults
  workload: Workload
  data: Record<string, Record<string, Json>>
  protocol?: Protocol
  faultPhaseMs?: number
  /** Keep every trace line (for the golden test); by default only the last 300. */
  fullTrace?: boolean
  /** The service's presumed abort (aborts neither forced nor acknowledged) and one-phase commit
   * for a single participant; by default odd seeds run them and even seeds run the batch
   * coordinator's rules. */
  presumedAbort?: boolean
}

type Payload =
  | { kind: 'request'; rpc: number; request: Request }
  | { kind: 'reply'; rpc: number; reply: unknown }
type Request =
  CoordinatorMessage | { type: 'ask'; txn: string } | { type: 'decision-request'; txn: string }
type Message = { from: string; to: string; at: number; payload: Payload }
type Rpc = {
  id: number
  from: string
  epoch: number
  deadline: number
  answered: boolean
  onReply: (reply: unknown) => void
  onTimeout: () => void
}

const REQUEST_MS = 60
const MAX_DELAY_MS = 12
const COORDINATOR_TICK_MS = 5
const PARTICIPANT_TICK_MS = 20

type NodeBase = { id: string; up: boolean; epoch: number; downUntil: number }
type CoordinatorNode = NodeBase & {
  txns: Map<string, CoordinatorTxn>
  records: CoordinatorRecord[]
  /** Lazy records not yet flushed: the next forced record or tick writes them, a crash loses
   * them. */
  volatile: CoordinatorRecord[]
}
type ParticipantNode = NodeBase & {
  txns: Map<string, ParticipantTxn>
  store: SimStore
  asking: Set<string>
}

export class Sim {
  readonly rng: Random
  readonly protocol: Protocol
  readonly invariants: Invariants
  now = 0
  faults: Faults
  readonly coordinator: CoordinatorNode
  readonly participants: ParticipantNode[]
  readonly trace: string[] = []
  readonly counts = { crashes: 0, drops: 0, duplicates: 0, partitions: 0, steps: 0 }
  #inFlight: Message[] = []
  #rpcs = new Map<number, Rpc>()
  #nextRpc = 1
  #cut = new Map<string, number>() // node → healed at
  #nextTick = { coordinator: 0, participant: 0 }
  #pending: Workload
  readonly #coordinatorEnv: CoordinatorEnv
  readonly #participantEnv: ParticipantEnv

  constructor(readonly config: SimConfig) {
    this.rng = random(config.seed)
    this.protocol = config.protocol ?? realProtocol
    this.faults = config.faults
    this.#pending = [...config.workload].sort((a, b) => a.at - b.at)
    const prng = this.rng.next
    this.#coordinatorEnv = {
      prng,
      timeoutMs: 150,
      backoff: { baseMs: 5, capMs: 80 },
      presumedAbort: config.presumedAbort ?? config.seed % 2 === 1,
      onePhase: config.presumedAbort ?? config.seed % 2 === 1,
    }
    this.#participantEnv = { prng, inDoubtAfterMs: 250, backoff: { baseMs: 20, capMs: 200 } }
    const base = (id: string): NodeBase => ({ id, up: true, epoch: 0, downUntil: 0 })
    this.coordinator = { ...base('c'), txns: new Map(), records: [], volatile: [] }
    this.participants = Array.from({ length: config.participants }, (_, i) => ({
      ...base(`p${i}`),
      txns: new Map(),
      store: new SimStore({
        records: [],
        data: new Map(Object.entries(config.data[`p${i}`] ?? {})),
      }),
      asking: new Set<string>(),
    }))
    this.invariants = new Invariants(this)
  }

  log(line: string): void {
    this.trace.push(`${String(this.now).padStart(5)} ${line}`)
    if (!this.config.fullTrace && this.trace.length > 600) this.trace.splice(0, 300)
  }

  // ------------------------------------------------------------------------------ the loop

  /** Runs the fault phase, heals everything, then runs until quiet; returns true if it got there. */
  run(maxMs = 60_000): boolean {
    const faultEnd = this.config.faultPhaseMs ?? 1500
    while (this.now < faultEnd) this.step()
    this.heal()
    while (this.now < faultEnd + maxMs) {
      if (this.quiescent()) return true
      this.step()
    }
    return this.quiescent()
  }

  step(): void {
    this.counts.steps += 1
    this.#injectFaults()
    const next = this.#nextTime()
    if (next > this.now) this.now = next
    this.#restartDue()
    this.#startDue()
    this.#deliverDue()
    this.#timeoutsDue()
    this.#ticksDue()
    this.invariants.afterStep()
  }

  #nextTime(): number {
    let next = Math.min(this.#nextTick.coordinator, this.#nextTick.participant)
    for (const m of this.#inFlight) next = Math.min(next, m.at)
    for (const r of this.#rpcs.values()) if (!r.answered) next = Math.min(next, r.deadline)
    if (this.#pending.length > 0) next = Math.min(next, this.#pending[0]!.at)
    return next
  }

  /** No more faults: crashed nodes restart, cut links heal, nothing is dropped or duplicated. */
  heal(): void {
    this.log('heal: no more faults')
    this.faults = { drop: 0, duplicate: 0, crash: 0, partition: 0, crashAfterPersist: 0 }
    for (const n of this.#nodes()) if (!n.up) n.downUntil = this.now
    this.#cut.clear()
  }

  /** Every transaction started and done, and no participant has anything prepared or locked. */
  quiescent(): boolean {
    if (this.#pending.length > 0) return false
    if (!this.#nodes().every((n) => n.up)) return false
    for (const t of this.coordinator.txns.values()) if (t.phase !== 'done') return false
    for (const p of this.participants) {
      for (const t of p.txns.values()) if (t.state === 'prepared') return false
      if (p.store.work.locks().size > 0) return false
    }
    return true
  }

  #nodes(): NodeBase[] {
    return [this.coordinator, ...this.participants]
  }

  // ------------------------------------------------------------------------------ faults

  #injectFaults(): void {
    const f = this.faults
    if (f.crash > 0 && this.rng.chance(f.crash)) {
      const node = this.rng.pick(this.#nodes())
      if (node.up) this.crash(node, this.now + this.rng.int(20, 400))
    }
    if (f.partition > 0 && this.rng.chance(f.partition)) {
      const node = this.rng.pick(this.#nodes())
      this.#cut.set(node.id, this.now + this.rng.int(20, 500))
      this.counts.partitions += 1
      this.log(`partition: ${node.id} cut off`)
    }
    for (const [id, until] of this.#cut) {
      if (until <= this.now) {
        this.#cut.delete(id)
        this.log(`partition: ${id} healed`)
      }
    }
  }

  /** The node loses everything it did not persist; its pending requests are forgotten. */
  crash(node: NodeBase, until: number): void {
    node.up = false
    node.epoch += 1
    node.downUntil = until
    this.counts.crashes += 1
    this.log(`crash ${node.id}`)
    if (node === this.coordinator) {
      this.coordinator.volatile = []
      this.protocol.onCrash(this.coordinator.records)
      this.coordinator.txns = new Map()
    } else {
      const p = node as ParticipantNode
      this.protocol.onCrash(p.store.durable.records)
      p.txns = new Map()
      p.asking.clear()
    }
  }

  #restartDue(): void {
    for (const n of this.#nodes()) {
      if (n.up || n.downUntil > this.now) continue
      n.up = true
      this.log(`restart ${n.id}`)
      if (n === this.coordinator) this.#restartCoordinator()
      else this.#restartParticipant(n as ParticipantNode)
    }
  }

  #restartCoordinator(): void {
    const c = this.coordinator
    c.txns = recoverCoordinator(c.records)
    for (const t of c.txns.values()) this.#coordinatorActions(resume(t, this.#coordinatorEnv))
  }

  #restartParticipant(p: ParticipantNode): void {
    const records = p.store.load()
    p.txns = recoverParticipant(records, { ...this.#participantEnv })
    // The in-doubt clock restarts with the node (its `at` is in the real clock's terms).
    for (const [txn, t] of p.txns) {
      if (t.state === 'prepared') p.txns.set(txn, { ...t, askAt: this.now + 250 })
    }
  }

  // ------------------------------------------------------------------------------ network

  #send(from: string, to: string, payload: Payload): void {
    if (this.#isCut(from, to) || this.rng.chance(this.faults.drop)) {
      this.counts.drops += 1
      this.log(`drop ${from}->${to} ${describe(payload)}`)
      return
    }
    const copies = this.rng.chance(this.faults.duplicate) ? 2 : 1
    if (copies === 2) this.counts.duplicates += 1
    for (let i = 0; i < copies; i++) {
      this.#inFlight.push({ from, to, payload, at: this.now + this.rng.int(1, MAX_DELAY_MS) })
    }
  }

  #isCut(from: string, to: string): boolean {
    return this.#cut.has(from) || this.#cut.has(to)
  }

  /** Sends a request; exactly one of `onReply` (per reply that arrives) or `onTimeout` runs. */
  #request(
    from: NodeBase,
    to: string,
    request: Request,
    onReply: Rpc['onReply'],
    onTimeout: Rpc['onTimeout'],
  ): void {
    const id = this.#nextRpc++
    const deadline = this.now + REQUEST_MS
    this.#rpcs.set(id, {
      id,
      from: from.id,
      epoch: from.epoch,
      deadline,
      answered: false,
      onReply,
      onTimeout,
    })
    this.#send(from.id, to, { kind: 'request', rpc: id, request })
  }

  #deliverDue(): void {
    const due = this.#inFlight.filter((m) => m.at <= this.now)
    if (due.length === 0) return
    this.#inFlight = this.#inFlight.filter((m) => m.at > this.now)
    // Messages due together arrive in a random order.
    for (let i = due.length - 1; i > 0; i--) {
      const j = this.rng.int(0, i)
      ;[due[i], due[j]] = [due[j]!, due[i]!]
    }
    for (const m of due) this.#deliver(m)
  }

  #deliver(m: Message): void {
    const to = this.#nodes().find((n) => n.id === m.to)!
    if (!to.up || this.#isCut(m.from, m.to)) return
    if (m.payload.kind === 'reply') {
      const rpc = this.#rpcs.get(m.payload.rpc)
      if (!rpc || rpc.epoch !== to.epoch || this.now > rpc.deadline) return
      rpc.answered = true
      rpc.onReply(m.payload.reply)
      return
    }
    const reply = this.#serve(to, m.payload.request)
    if (reply !== undefined) this.#send(m.to, m.from, { kind: 'reply', rpc: m.payload.rpc, reply })
  }

  #timeoutsDue(): void {
    for (const rpc of [...this.#rpcs.values()]) {
      if (rpc.answered && this.now > rpc.deadline) this.#rpcs.delete(rpc.id)
      if (rpc.answered || rpc.deadline > this.now) continue
      this.#rpcs.delete(rpc.id)
      const from = this.#nodes().find((n) => n.id === rpc.from)!
      if (from.up && from.epoch === rpc.epoch) rpc.onTimeout()
    }
  }

  /** A node answering a request, as its HTTP handler would. */
  #serve(node: NodeBase, request: Request): unknown {
    if (node === this.coordinator) {
      if (request.type !== 'ask') return undefined
      return coordinatorAnswer(this.coordinator.txns.get(request.txn))
    }
    const p = node as ParticipantNode
    if (request.type === 'prepare') {
      this.log(`${p.id} <- prepare ${request.txn}`)
      const event = {
        type: 'prepare',
        txn: request.txn,
        now: this.now,
        coordinator: 'c',
        peers: request.participants,
        ...(request.onePhase ? { onePhase: true } : {}),
      } as const
      return this.#participantHandle(p, event, request.ops ?? [])
    }
    if (request.type === 'decide') {
      this.log(`${p.id} <- ${request.decision} ${request.txn}`)
      return this.#participantHandle(
        p,
        { type: 'decide', txn: request.txn, decision: request.decision },
        [],
      )
    }
    if (request.type === 'decision-request') {
      const reply = this.#participantHandle(p, { type: 'decision-request', txn: request.txn }, [])
      return reply && reply.kind === 'outcome' ? reply.state : 'prepared'
    }
    return undefined
  }

  // ------------------------------------------------------------------------------ coordinator

  #startDue(): void {
    while (this.#pending.length > 0 && this.#pending[0]!.at <= this.now) {
      const w = this.#pending.shift()!
      const c = this.coordinator
      // A client whose coordinator is down retries until it is up.
      if (!c.up) {
        this.#pending.unshift({ ...w, at: c.downUntil })
        this.#pending.sort((a, b) => a.at - b.at)
        return
      }
      if (c.txns.has(w.txn) || c.records.some((r) => r.txn === w.txn)) continue
      this.log(`begin ${w.txn} on ${Object.keys(w.ops).join(',')}`)
      const participants = Object.keys(w.ops)
      this.#coordinatorActions(
        this.protocol.begin(w.txn, participants, this.now, this.#coordinatorEnv, w.ops),
      )
    }
  }

  #coordinatorEvent(txn: string, event: CoordinatorEvent): void {
    const t = this.coordinator.txns.get(txn)
    if (!t) return
    this.#coordinatorActions(this.protocol.coordinatorStep(t, event, this.#coordinatorEnv))
  }

  #coordinatorActions([next, actions]: [CoordinatorTxn, CoordinatorAction[]]): void {
    const c = this.coordinator
    const epoch = c.epoch
    c.txns.set(next.txn, next)
    for (const action of this.protocol.order(actions)) {
      if (!c.up || c.epoch !== epoch) return // crashed mid-step: the rest never happened
      if (action.type === 'persist') {
        if (action.lazy) c.volatile.push(action.record)
        else c.records.push(...c.volatile.splice(0), action.record)
        this.log(
          `c persist${action.lazy ? ' lazily' : ''} ${action.record.type} ${action.record.txn}${'decision' in action.record ? ` ${action.record.decision}` : ''}`,
        )
        this.invariants.onCoordinatorPersist(action.record)
        if (this.rng.chance(this.faults.crashAfterPersist))
          this.crash(c, this.now + this.rng.int(20, 300))
      } else {
        this.invariants.onCoordinatorSend(action.to, action.message)
        this.#coordinatorSend(next.txn, action.to, action.message)
      }
    }
  }

  #coordinatorSend(txn: string, to: string, message: CoordinatorMessage): void {
    const c = this.coordinator
    this.#request(
      c,
      to,
      message,
      (reply) => this.#coordinatorEvent(txn, replyEvent(to, message, reply as Reply, this.now)),
      () => this.#coordinatorEvent(txn, { type: 'unreachable', to, now: this.now }),
    )
  }

  // ------------------------------------------------------------------------------ participants

  #participantHandle(
    p: ParticipantNode,
    event: ParticipantEvent,
    ops: readonly Op[],
  ): Reply | null {
    const epoch = p.epoch
    const [next, actions] = this.protocol.participantStep(
      p.txns.get(event.txn) ?? unknownTxn(event.txn),
      event,
      this.#participantEnv,
    )
    p.txns.set(event.txn, next)
    let reply: Reply | null = null
    for (const action of actions) {
      if (!p.up || p.epoch !== epoch) return null
      reply = this.#participantAction(p, event, action, ops) ?? reply
    }
    if (reply && reply.kind === 'vote') this.invariants.onVoteSent(p, reply.txn, reply.vote)
    return reply
  }

  #participantAction(
    p: ParticipantNode,
    event: ParticipantEvent,
    action: ParticipantAction,
    ops: readonly Op[],
  ): Reply | null {
    if (action.type === 'check') {
      const forced = this.config.workload.find((w) => w.txn === event.txn)?.no.includes(p.id)
      const verdict = forced
        ? { vote: 'no' as const, reason: 'forced no' }
        : p.store.check(event.txn, ops)
      return this.#participantHandle(
        p,
        {
          type: 'checked',
          txn: event.txn,
          now: this.now,
          ...verdict,
          ...(readsOnly(ops) ? { readOnly: true } : {}),
          ...(event.type === 'prepare' && event.onePhase ? { onePhase: true } : {}),
        },
        ops,
      )
    }
    if (action.type === 'persist') {
      p.store.persist(action.record, action.effect)
      this.log(`${p.id} persist ${action.record.state} ${action.record.txn}`)
      this.invariants.onParticipantPersist(p, action.record)
      if (this.rng.chance(this.faults.crashAfterPersist))
        this.crash(p, this.now + this.rng.int(20, 300))
      return null
    }
    if (action.type === 'ask') {
      this.#ask(p, action.txn, action.peers)
      return null
    }
    return action.reply
  }

  /** The in-doubt procedure of lib/in-doubt.ts: the coordinator first, then every peer. */
  #ask(p: ParticipantNode, txn: string, peers: readonly string[]): void {
    this.log(`${p.id} in doubt about ${txn}: asks`)
    const settle = (decision: Decision | null) => {
      if (!p.up) return
      const event: ParticipantEvent = decision
        ? { type: 'decide', txn, decision }
        : { type: 'unresolved', txn, now: this.now }
      this.#participantHandle(p, event, [])
    }
    const askPeers = () => {
      const answers: unknown[] = []
      let left = peers.length
      const done = () => {
        left -= 1
        if (left === 0) settle(outcomeFromPeers(answers))
      }
      for (const peer of peers) {
        this.#request(
          p,
          peer,
          { type: 'decision-request', txn },
          (state) => {
            answers.push(state)
            done()
          },
          done,
        )
      }
    }
    this.#request(
      p,
      'c',
      { type: 'ask', txn },
      (answer) => settle(outcomeFromCoordinator(answer)),
      askPeers,
    )
  }

  #ticksDue(): void {
    if (this.now >= this.#nextTick.coordinator) {
      this.#nextTick.coordinator = this.now + COORDINATOR_TICK_MS
      const c = this.coordinator
      if (c.up) {
        c.records.push(...c.volatile.splice(0)) // the lazy flush timer
        // Like the real shell: only a transaction whose wake-up time has come is ticked.
        for (const t of [...c.txns.values()]) {
          const at = wakeAt(t)
          if (at !== null && at <= this.now) {
            this.#coordinatorEvent(t.txn, { type: 'tick', now: this.now })
          }
        }
      }
    }
    if (this.now >= this.#nextTick.participant) {
      this.#nextTick.participant = this.now + PARTICIPANT_TICK_MS
      for (const p of this.participants) {
        if (!p.up) continue
        for (const t of [...p.txns.values()]) {
          if (t.state === 'prepared' && t.askAt !== null && t.askAt <= this.now) {
            this.#participantHandle(p, { type: 'tick', txn: t.txn, now: this.now }, [])
          }
        }
      }
    }
  }
}

function describe(payload: Payload): string {
  if (payload.kind === 'reply') return `reply ${JSON.stringify(payload.reply)}`
  const r = payload.request
  return r.type === 'decide' ? `${r.decision} ${r.txn}` : `${r.type} ${r.txn}`
}

/** What the coordinator's shell makes of a participant's answer (lib/coordinator-node.ts). */
function replyEvent(
  from: string,
  message: CoordinatorMessage,
  reply: Reply,
  now: number,
): CoordinatorEvent {
  if (reply === null) return { type: 'unreachable', to: from, now }
  if (reply.kind === 'vote')
    return {
      type: 'vote',
      from,
      vote: reply.vote,
      now,
      ...(reply.reason ? { reason: reply.reason } : {}),
    }
  if (reply.kind === 'conflict') return { type: 'refused', from, error: reply.error, now }
  if (message.type === 'prepare' && message.onePhase && reply.kind === 'outcome') {
    return {
      type: 'outcome',
      from,
      decision: reply.state === 'committed' ? 'commit' : 'abort',
      now,
    }
  }
  if (message.type === 'prepare') return { type: 'unreachable', to: from, now }
  return { type: 'ack', from, now }
}

export function createSim(config: SimConfig): Sim {
  return new Sim(config)
}
