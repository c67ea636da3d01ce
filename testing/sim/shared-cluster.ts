// Several coordinators on one shared log (`--coordinators N`): N real coordinator services
// (CoordinatorNode and its Hono app, as `serve --log-db` runs them) on the simulated database
// of ./shared-log.ts, with the participants of ./cluster.ts. Clients spread over the
// coordinators and send the same id to the next one when theirs does not answer. Coordinators
// crash and restart (a new epoch once the old lease ran out), stall (a stall past the lease
// ends in a takeover, and the stalled one, fenced when it wakes, stops as the real one does:
// here it crashes, and restarts later), and lose the database (all of them, or one alone).
import {
  recoverCoordinator,
  type CoordinatorRecord,
  type CoordinatorTxn,
} from '../../lib/core/index.ts'
import { createCoordinatorApp } from '../../lib/http/coordinator-app.ts'
import { CoordinatorNode } from '../../lib/node/coordinator-node.ts'
import { CLIENT, Sim, urlOf, type SimConfig, type SimNode, type Workload } from './cluster.ts'
import { Disk } from './disk.ts'
import type { Host } from './network.ts'
import { SharedInvariants } from './shared-invariants.ts'
import { LEASE_RULES, SimDatabase, SimSharedLog, type DatabaseObserver } from './shared-log.ts'

const idOf = (url: string) => new URL(url).host

export const LEASE_MS = 240

/** Per step, besides the faults of ./cluster.ts (which crash coordinators too). */
const SHARED_FAULTS = { crash: 0.002, stall: 0.003, dbDown: 0.001, dbCut: 0.002, dbSlow: 0.002 }

type Outcome = 'commit' | 'abort'
export type SharedCoordinator = SimNode & { node: CoordinatorNode | null; stalledUntil: number }
type Client = { txn: string; ops: Workload[number]['ops']; at: number; outcome: Outcome | null }

export type SharedCounts = {
  takeovers: number
  fencings: number
  stalls: number
  dbOutages: number
  dbCuts: number
  dbFailed: number
  retries: number
}

export class SharedSim extends Sim {
  readonly checks: SharedInvariants
  readonly db: SimDatabase
  readonly coordinators: SharedCoordinator[]
  readonly clients = new Map<string, Client>()
  readonly client: Host = { id: CLIENT, up: true, epoch: 0, app: null }
  readonly more = { fencings: 0, stalls: 0, dbCuts: 0, retries: 0 }
  #unstarted: number

  constructor(config: SimConfig & { coordinators: number }) {
    super({ ...config, service: true })
    this.checks = new SharedInvariants(this.invariants, () => this.now, LEASE_MS)
    const rules = { ...LEASE_RULES, ...this.protocol.leaseRules }
    const checks = this.checks
    const observer: DatabaseObserver = {
      leased: (name, epoch, until) => checks.leased(name, epoch, until),
      takenOver: (victim, taker) => {
        this.log(`${idOf(taker.name)} takes over ${idOf(victim.name)} (epoch ${victim.epoch})`)
        checks.takenOver(victim, taker)
      },
      written: (row) => {
        const r = row.record
        const what = `${r.type} ${r.txn}${r.type === 'decision' ? ` ${r.decision}` : ''}`
        this.log(`${idOf(row.writer)} logged ${what} (epoch ${row.epoch})`)
        checks.written(row)
      },
    }
    this.db = new SimDatabase(this.sched, this.rng, LEASE_MS, rules, observer)
    this.coordinators = Array.from({ length: config.coordinators }, (_, i) => ({
      id: `c${i}`,
      up: true,
      epoch: 0,
      app: null,
      downUntil: 0,
      stalledUntil: 0,
      disk: new Disk(this.sched, this.rng, this.disk),
      view: '',
      node: null,
    }))
    this.net.hosts.delete(this.coordinator.id)
    for (const c of this.coordinators) this.net.hosts.set(c.id, c)
    this.#unstarted = config.workload.length
  }

  sharedCounts(): SharedCounts {
    const { takeovers, dbOutages, dbFailed } = this.db.counts
    return { takeovers, dbOutages, dbFailed, ...this.more }
  }

  override isCoordinator(id: string): boolean {
    return this.coordinators.some((c) => c.id === id)
  }

  override loggedRecords(): CoordinatorRecord[] {
    return this.db.rows.map((r) => r.record)
  }

  /** What the log holds of `txn`, rebuilt as a coordinator taking it over would. */
  override finalOf(txn: string): CoordinatorTxn | undefined {
    return recoverCoordinator(this.db.recordsOf([txn]), this.now).get(txn)
  }

  protected override nodes(): SimNode[] {
    return [...this.coordinators, ...this.participants]
  }

  /** Started in the background: a coordinator's start waits on the database, which answers
   * only as virtual time goes on. */
  protected override async startCoordinators(): Promise<void> {
    for (const c of this.coordinators) void this.#start(c)
  }

  async #start(c: SharedCoordinator): Promise<void> {
    const epoch = c.epoch
    const alive = () => c.up && c.epoch === epoch
    const ports = this.ports(c)
    const deliver = (fn: () => void) => this.net.whenRunning(c, () => alive() && fn())
    const handle = new SimSharedLog(this.db, urlOf(c.id), {
      from: c.id,
      deliver,
      sleep: ports.sleep,
    })
    await handle.open()
    if (!alive()) return
    this.log(`${c.id} holds its lease in epoch ${handle.epoch}`)
    handle.onFenced = (error) => {
      this.more.fencings += 1
      this.log(`${c.id} fenced: ${error.message}; it stops`)
      if (alive()) this.crash(c, this.now + this.rng.int(20, 300))
    }
    const shared = this.protocol.wrapShared ? this.protocol.wrapShared(handle) : handle
    const node = new CoordinatorNode({
      dir: `/sim/${c.id}`,
      timeoutMs: 150,
      requestMs: 60,
      backoff: { baseMs: 5, capMs: 80 },
      tickMs: 5,
      prng: this.rng.next,
      selfUrl: urlOf(c.id),
      alwaysBatch: true,
      lazyAborts: true,
      onePhase: true,
      log: shared,
      shared,
      view: this.view(c),
      ports,
      ...(this.retain !== undefined ? { retain: this.retain } : {}),
      ...(this.protocol.coordinator ? { core: this.protocol.coordinator } : {}),
    })
    c.node = node
    await node.start()
    if (!alive()) return
    const participants = this.participants.map((p) => urlOf(p.id))
    c.app = createCoordinatorApp(node, { participants, ackWaitMs: 0 })
  }

  override crash(n: SimNode, until: number): void {
    if (!this.coordinators.includes(n as SharedCoordinator)) return super.crash(n, until)
    const c = n as SharedCoordinator
    c.up = false
    c.epoch += 1
    c.downUntil = until
    c.stalledUntil = 0
    c.app = null
    c.node = null
    this.counts.crashes += 1
    this.log(`crash ${c.id}`)
    if (Number.isFinite(until)) this.sched.at(until, () => {})
  }

  protected override async restartDue(): Promise<void> {
    for (const n of this.nodes()) {
      if (n.up || n.downUntil > this.now) continue
      n.up = true
      this.log(`restart ${n.id}`)
      if (this.isCoordinator(n.id)) void this.#start(n as SharedCoordinator)
      else await this.startParticipant(this.participant(n.id))
    }
  }

  protected override injectFaults(): void {
    super.injectFaults()
    if (this.faults.crash === 0) return // healed
    const f = SHARED_FAULTS
    const db = this.db
    const pick = () => this.rng.pick(this.coordinators)
    if (this.rng.chance(f.crash)) {
      const c = pick()
      if (c.up) this.crash(c, this.now + this.rng.int(20, 400))
    }
    if (this.rng.chance(f.stall)) {
      const c = pick()
      if (c.up && c.stalledUntil <= this.now) {
        c.stalledUntil = this.now + this.rng.int(20, 3 * LEASE_MS)
        this.sched.at(c.stalledUntil, () => {})
        this.more.stalls += 1
        this.log(`stall ${c.id} until ${c.stalledUntil}`)
      }
    }
    if (this.rng.chance(f.dbDown)) {
      db.downUntil = Math.max(db.downUntil, this.now + this.rng.int(20, 2 * LEASE_MS))
      db.counts.dbOutages += 1
      this.log(`database out of reach until ${db.downUntil}`)
    }
    if (this.rng.chance(f.dbCut)) {
      const c = pick()
      db.cut.set(c.id, this.now + this.rng.int(20, 2 * LEASE_MS))
      this.more.dbCuts += 1
      this.log(`${c.id} cut off from the database until ${db.cut.get(c.id)}`)
    }
    if (this.rng.chance(f.dbSlow)) {
      db.slowUntil = this.now + this.rng.int(20, 300)
      this.log(`database slow until ${db.slowUntil}`)
    }
  }

  override heal(): void {
    super.heal()
    this.db.downUntil = 0
    this.db.slowUntil = 0
    this.db.cut.clear()
  }

  /** Every client has its outcome, every coordinator runs and has finished what it holds (its
   * decisions in the log), and the participants are quiet. */
  override quiescent(): boolean {
    if (this.#unstarted > 0) return false
    for (const client of this.clients.values()) {
      // Told, and the log holds it (a one-phase outcome is told before its record is written).
      if (client.outcome === null || this.checks.decision(client.txn) === undefined) return false
    }
    for (const c of this.coordinators) {
      if (!c.up || c.node === null || c.app === null || c.stalledUntil > this.now) return false
      for (const t of c.node.txns.values()) {
        if (t.phase !== 'done' || t.unlogged !== null || !t.logged) return false
        // A one-phase outcome is settled before its record is written: the log must get it.
        if (this.checks.decision(t.txn) === undefined) return false
      }
    }
    if (!this.participants.every((p) => p.up)) return false
    return this.participantsQuiet()
  }

  /** A client: the transfer goes to a coordinator (spread over them by its index). */
  protected override begin(w: Workload[number]): void {
    this.#unstarted -= 1
    this.started.push(w)
    const ops: Client['ops'] = {}
    for (const [id, list] of Object.entries(w.ops)) ops[urlOf(id)] = list
    const at = this.config.workload.indexOf(w) % this.coordinators.length
    const client: Client = { txn: w.txn, ops, at, outcome: null }
    this.clients.set(w.txn, client)
    this.log(`begin ${w.txn} on ${Object.keys(w.ops).join(',')} at c${at}`)
    this.#submit(client)
  }

  /** POST /transactions; no answer, a 503 or a 202 (still undecided): the same id again, at
   * the next coordinator. */
  #submit(client: Client): void {
    const c = this.coordinators[client.at]!
    const url = `${urlOf(c.id)}/transactions`
    const body = { id: client.txn, ops: client.ops }
    void this.net.request(this.client, 0, 'POST', url, body, 400).then((reply) => {
      const answer = reply?.status === 200 ? (reply.body as { decision?: unknown }) : null
      if (answer?.decision === 'commit' || answer?.decision === 'abort') {
        client.outcome = answer.decision
        return this.log(`client: ${client.txn} ${client.outcome} from ${c.id}`)
      }
      this.more.retries += 1
      client.at = (client.at + 1) % this.coordinators.length
      const why = reply === null ? 'no answer' : String(reply.status)
      this.log(`client: ${client.txn} ${why} from ${c.id}, again at c${client.at}`)
      this.sched.at(this.now + this.rng.int(5, 40), () => this.#submit(client))
    })
  }

  /** At the end, beside the atomic-commit checks: every client was told the log's decision. */
  clientsAgree(): void {
    this.checks.clientsAgree([...this.clients.values()].map((c) => [c.txn, c.outcome]))
  }
}
