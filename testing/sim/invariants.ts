// The atomic-commit properties, checked as the simulation runs: each is named after what it
// checks, and a violation throws a SimViolation that names it.
import type { CoordinatorRecord, Json, ParticipantRecord, Ballot } from '../../lib/core/index.ts'
import type { WireReply } from '../../lib/node/ports.ts'
import { decodeBatchReplies } from '../../lib/wire/coordinator.ts'
import { decodeBatch, decodeReply, decodeTxn, type Body } from '../../lib/wire/participant.ts'
import { CLIENT, urlOf, type Sim, type SimParticipant } from './cluster.ts'

export class SimViolation extends Error {
  constructor(
    readonly property: string,
    detail: string,
  ) {
    super(`${property}: ${detail}`)
  }
}

type Outcome = 'commit' | 'abort'

export class Invariants {
  /** Every outcome any node ever persisted for a transaction. */
  readonly #outcomes = new Map<string, Outcome>()
  /** The last outcome each node persisted for each transaction: `node txn` → outcome. */
  readonly #decided = new Map<string, Outcome>()
  /** `node txn` for every read-only vote sent: such a participant keeps no record. */
  readonly #readOnly = new Set<string>()
  /** `node txn` for every yes vote and every precommit made durable (kept here: a checkpoint
   * may fold the records away later). */
  readonly #yes = new Set<string>()
  readonly #precommitted = new Set<string>()

  constructor(readonly sim: Sim) {}

  /** The first violation seen. It is kept as well as thrown, because a check that runs inside
   * a node's own promise chain (a message read off the wire) may have its throw swallowed. */
  violation: SimViolation | null = null

  #fail(property: string, detail: string): never {
    this.sim.log(`VIOLATION ${property}: ${detail}`)
    this.violation ??= new SimViolation(property, detail)
    throw this.violation
  }

  /** AC1 agreement and AC2 stability, for one node's newly persisted outcome. */
  #decide(node: string, txn: string, outcome: Outcome): void {
    const mine = this.#decided.get(`${node} ${txn}`)
    if (mine !== undefined && mine !== outcome) {
      this.#fail('stability (AC2)', `${node} decided ${txn} ${mine}, then ${outcome}`)
    }
    this.#decided.set(`${node} ${txn}`, outcome)
    const known = this.#outcomes.get(txn)
    if (known !== undefined && known !== outcome) {
      this.#fail('agreement (AC1)', `${node} decided ${txn} ${outcome}, another node ${known}`)
    }
    this.#outcomes.set(txn, outcome)
  }

  /** A violation found by a check kept elsewhere (testing/sim/shared-invariants.ts). */
  fail(property: string, detail: string): never {
    this.#fail(property, detail)
  }

  /** `node`: the coordinator that logged it (several share one log). */
  onCoordinatorPersist(record: CoordinatorRecord, node = 'c'): void {
    if (record.type !== 'decision') return
    if (record.decision === 'commit') this.#validCommit(record.txn, record.participants ?? [])
    // Learned from a participant that committed first (a termination): its own rule applied.
    const learned = this.#outcomes.get(record.txn) === 'commit'
    if (record.decision === 'commit' && !learned) this.#quorumPrecommitted(node, record.txn)
    this.#decide(node, record.txn, record.decision)
  }

  /** The outcome every node persisted for `txn` so far, if any did. */
  outcome(txn: string): Outcome | undefined {
    return this.#outcomes.get(txn)
  }

  /** Three-phase: the coordinator commits only once a quorum (a majority of the transaction's
   * participants) is durably precommitted, so that any quorum that terminates later meets it.
   * (A participant's termination is judged by agreement alone: what it must never break.) */
  #quorumPrecommitted(node: string, txn: string): void {
    if (!this.sim.config.threePhase) return
    const ids = Object.keys(this.sim.config.workload.find((w) => w.txn === txn)?.ops ?? {})
    const pre = ids.filter((id) => this.#precommitted.has(`${id} ${txn}`)).length
    if (pre < Math.floor(ids.length / 2) + 1) {
      this.#fail(
        '3PC: commit needs a precommitted quorum',
        `${node} committed ${txn} with ${pre} of ${ids.length} precommitted`,
      )
    }
  }

  /** AC3 validity: commit only if every participant has durably voted yes (or read-only). */
  #validCommit(txn: string, participants: readonly string[]): void {
    if (participants.length === 0) this.#fail('validity (AC3)', `commit of ${txn} names nobody`)
    for (const url of participants) {
      const p = this.sim.participant(url)
      const yes =
        this.#readOnly.has(`${p.id} ${txn}`) ||
        this.#yes.has(`${p.id} ${txn}`) ||
        p.durable.records.some((r) => r.txn === txn && r.vote === 'yes')
      if (!yes) this.#fail('validity (AC3)', `commit of ${txn} without a yes vote from ${p.id}`)
    }
  }

  onParticipantPersist(p: { id: string }, record: ParticipantRecord): void {
    if (record.vote === 'yes') this.#yes.add(`${p.id} ${record.txn}`)
    if (record.state === 'precommitted') this.#precommitted.add(`${p.id} ${record.txn}`)
    if (record.state === 'committed') this.#decide(p.id, record.txn, 'commit')
    if (record.state === 'aborted') this.#decide(p.id, record.txn, 'abort')
  }

  /** Persist-before-send: a commit leaves only once the coordinator has logged it (an abort
   * need not be: without a record, the presumption is abort). Read off the wire. */
  onRequest(from: string, to: string, path: string, body: unknown): void {
    if (from === CLIENT) return // a client's request to a coordinator
    const items =
      path === '/batch' ? decodeBatch(body as Body) : [{ ...(body as Body), type: path.slice(1) }]
    if (!this.sim.isCoordinator(from)) return this.#terminatorSends(from, to, items as Body[])
    for (const item of items as Body[]) {
      if (item.type === 'precommit') this.#precommitLogged(decodeTxn(item), to)
      if (item.type !== 'commit') continue
      const txn = decodeTxn(item)
      const logged = this.sim
        .loggedRecords()
        .some((r) => r.type === 'decision' && r.txn === txn && r.decision === 'commit')
      if (!logged)
        this.#fail('persist-before-send', `commit of ${txn} sent to ${to} before it was logged`)
    }
  }

  /** Three-phase, persist-before-send: the coordinator's precommit leaves only once its
   * precommit record is durable (a restart must never abort what it may have precommitted). */
  #precommitLogged(txn: string, to: string): void {
    const logged = this.sim
      .loggedRecords()
      .some((r) => (r.type === 'precommit' || r.type === 'decision') && r.txn === txn)
    if (!logged) this.#fail('persist-before-send', `precommit of ${txn} sent to ${to} unlogged`)
  }

  /** A terminating participant precommits (or commits) others only once it is durably
   * precommitted (or committed) itself. */
  #terminatorSends(from: string, to: string, items: Body[]): void {
    const p = this.sim.participant(from)
    for (const item of items) {
      const txn = item.txn
      if (typeof txn !== 'string') continue
      const durable =
        item.type === 'precommit'
          ? this.#precommitted.has(`${from} ${txn}`)
          : item.type !== 'commit' ||
            p.durable.records.some((r) => r.txn === txn && r.state === 'committed')
      if (!durable) this.#fail('persist-before-send', `${from} sent ${item.type} of ${txn} first`)
    }
  }

  /** What a participant's answer says about its votes, read off the wire as it leaves. */
  onAnswer(host: string, path: string, reply: WireReply): void {
    if (this.sim.isCoordinator(host) || !['/prepare', '/batch', '/precommit'].includes(path)) return
    const p = this.sim.participant(host)
    const items = path === '/batch' ? (decodeBatchReplies(reply.body, Infinity) ?? []) : [reply]
    for (const item of items) {
      const txn = (item?.body as Body | null)?.txn
      if (item === null || typeof txn !== 'string') continue
      const decoded = decodeReply(txn, item.status, item.body)
      if (decoded?.kind === 'vote') this.#voteSent(p, txn, decoded.vote)
      const pre = decoded?.kind === 'pre' && decoded.state === 'precommitted'
      if (pre && !this.#precommitted.has(`${p.id} ${txn}`)) {
        this.#fail('persist-before-send', `${p.id} acknowledged precommit of ${txn} unlogged`)
      }
    }
  }

  /** Persist-before-send: a yes vote leaves only once the participant has logged it. */
  #voteSent(
    p: { id: string; durable: { records: ParticipantRecord[] } },
    txn: string,
    vote: Ballot,
  ): void {
    if (vote === 'read-only') this.#readOnly.add(`${p.id} ${txn}`)
    if (vote !== 'yes') return
    const logged = p.durable.records.some((r) => r.txn === txn && r.vote === 'yes')
    if (!logged) this.#fail('persist-before-send', `${p.id} voted yes on ${txn} before logging it`)
  }

  /** Checked after every step: no balance is ever negative. */
  afterStep(): void {
    for (const p of this.sim.participants) {
      for (const [key, value] of p.durable.data) {
        if (typeof value === 'number' && value < 0)
          this.#fail('bank: no negative balance', `${p.id} ${key} = ${value}`)
      }
    }
  }

  /** At the end, after healing: AC5 termination, validity's second half, and the bank total. */
  atEnd(quiescent: boolean, expectedTotal: number | null): void {
    if (!quiescent) {
      if (this.sim.config.coordinatorDies) {
        this.#fail('3PC: non-blocking', 'with the coordinator dead, a transaction stayed undecided')
      }
      this.#fail('termination (AC5)', 'the cluster did not settle after healing')
    }
    const sim = this.sim
    for (const w of sim.started) {
      // Folded or not: a checkpoint must not change what any transaction ended as. The
      // outcome is the coordinator's, or (one that died) the one every participant agrees on.
      const t = sim.finalOf(w.txn)
      const decision = t ? t.decision : (this.#outcomes.get(w.txn) ?? 'abort')
      const participants = t ? t.participants : Object.keys(w.ops).map((id) => urlOf(id))
      for (const url of participants) this.#ended(sim.participant(url), w.txn, decision)
    }
    if (expectedTotal !== null) {
      const total = sim.participants
        .flatMap((p) => [...p.durable.data.values()])
        .reduce<number>((sum, v: Json) => sum + (typeof v === 'number' ? v : 0), 0)
      if (total !== expectedTotal)
        this.#fail('bank: total conserved', `total ${total}, expected ${expectedTotal}`)
      this.#balancesMatchCommits()
    }
  }

  /** AC5 and validity at the end: `p` ended `txn` as `decision`, its operations applied. */
  #ended(p: SimParticipant, txn: string, decision: Outcome | null): void {
    const id = p.id
    const state = p.node!.state(txn).state
    // Presumed abort: a participant that voted no may have forgotten it (its record was
    // optional). A read-only participant keeps nothing: it is unknown whatever the outcome.
    const readOnly = this.#readOnly.has(`${id} ${txn}`)
    const ok =
      decision === 'commit'
        ? state === 'committed' || (readOnly && state === 'unknown')
        : state === 'aborted' || state === 'unknown'
    if (!ok) this.#fail('termination (AC5)', `${id} is ${state} on ${txn}, decided ${decision}`)
    if (decision === 'commit' && !readOnly && !p.durable.applied.has(txn)) {
      this.#fail('validity (AC3)', `${id} committed ${txn} without applying its operations`)
    }
  }

  /** Each balance is the opening one plus the adds of the transactions the coordinator
   * committed (adds commute, so their order does not matter): no commit applied twice, none
   * lost, none applied with other operations than its own. */
  #balancesMatchCommits(): void {
    const sim = this.sim
    const expected = new Map<string, number>()
    for (const p of sim.participants) {
      for (const [key, value] of Object.entries(sim.config.data[p.id] ?? {})) {
        expected.set(`${p.id} ${key}`, value as number)
      }
    }
    for (const w of sim.config.workload) {
      if (this.#outcomes.get(w.txn) !== 'commit') continue
      for (const [id, ops] of Object.entries(w.ops)) {
        for (const op of ops) {
          if (op.op !== 'add') continue
          const key = `${id} ${op.key}`
          expected.set(key, (expected.get(key) ?? 0) + op.amount)
        }
      }
    }
    for (const p of sim.participants) {
      for (const [key, value] of p.durable.data) {
        if (!key.startsWith('acct:')) continue // three-phase transfers also record `audit:`
        const want = expected.get(`${p.id} ${key}`) ?? 0
        if (value !== want) {
          this.#fail('bank: balances match the commits', `${p.id} ${key} = ${value}, want ${want}`)
        }
      }
    }
  }
}
