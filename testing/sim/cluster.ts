// A whole cluster in one process, driven by one seed: the real CoordinatorNode (batch mode on
// even seeds, the service on odd ones) and 2-5 real ParticipantNodes with their real Hono apps,
// over simulated ports: a virtual clock and timers, a network that delays, reorders, drops and
// duplicates messages and cuts nodes off, and disks that stall, fail every write for a while,
// and lose at a crash whatever was not flushed. Nodes crash (the process is gone) and restart
// from what their disks hold. Nothing here decides anything a node decides: it only runs them.
import type { Hono } from 'hono'
import type { CoordinatorRecord, CoordinatorTxn, Json, Op } from '../../lib/core/index.ts'
import { participantStep } from '../../lib/core/index.ts'
import { createCoordinatorApp } from '../../lib/http/coordinator-app.ts'
import { createApp } from '../../lib/http/participant-app.ts'
import { CoordinatorNode, type CoordinatorCore } from '../../lib/node/coordinator-node.ts'
import { ParticipantNode } from '../../lib/node/participant-node.ts'
import type { Ports, View, WireReply } from '../../lib/node/ports.ts'
import type { CoordinatorLog, ParticipantStore, SharedLog } from '../../lib/store/store.ts'
import { Disk, GroupWriter, type DiskCounts } from './disk.ts'
import { Invariants } from './invariants.ts'
import { SimNetwork, type Host } from './network.ts'
import { random, type Random } from './prng.ts'
import { Scheduler, settle } from './scheduler.ts'
import type { LeaseRules } from './shared-log.ts'
import { SimLog, SimStore, type Durable } from './store.ts'

export type Faults = {
  drop: number
  duplicate: number
  /** Per step: chance that a node crashes (it restarts after a while). */
  crash: number
  /** Per step: chance that a node is cut off from every other node (healed after a while). */
  partition: number
  /** Per flush: chance the node crashes right after it, before anyone hears of it. */
  crashAfterPersist: number
  /** Per step: chance that a node's disk fails every write for a while (full, or I/O errors). */
  diskFail: number
  /** Per step: chance that a node's disk stalls for a while. */
  diskStall: number
}

/** What a broken variant changes (testing/sim/broken.ts); by default nothing. */
export type Protocol = {
  coordinator?: CoordinatorCore
  participantStep?: typeof participantStep
  /** What a crash does to a node's durable records. */
  onCrash?: (records: unknown[]) => void
  /** The glue between a node and its disk. */
  wrapLog?: (log: CoordinatorLog<CoordinatorRecord>) => CoordinatorLog<CoordinatorRecord>
  wrapStore?: (store: ParticipantStore) => ParticipantStore
  /** Several coordinators (testing/sim/shared-cluster.ts): the shared log's rules, and the glue
   * between a coordinator and the shared log. */
  leaseRules?: Partial<LeaseRules>
  wrapShared?: (log: SharedLog<CoordinatorRecord>) => SharedLog<CoordinatorRecord>
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
  /** The service (lazy aborts, one phase, batched messages, participants may ask it); by
   * default odd seeds run it and even seeds the batch coordinator. */
  service?: boolean
  /** How many finished transactions each node keeps before it folds the oldest (a
   * checkpoint); by default 2 on seeds 1 and 3 modulo 5, the nodes' default on the others. */
  retain?: number
  /** Every transaction in three-phase commit; partitions may then also split the cluster. */
  threePhase?: boolean
  /** The coordinator dies for good when the faults end: the participants finish alone. */
  coordinatorDies?: boolean
}

export type SimNode = Host & { downUntil: number; disk: Disk; view: string }
export type SimCoordinator = SimNode & {
  node: CoordinatorNode | null
  records: CoordinatorRecord[]
  /** Transactions folded out of its log (a checkpoint); durable, as `records` are. */
  folded: Set<string>
}
export type SimParticipant = SimNode & { node: ParticipantNode | null; durable: Durable }

export const urlOf = (id: string): string => `http://${id}`

/** The host the clients send from (several coordinators: testing/sim/shared-cluster.ts). */
export const CLIENT = 'client'

export class Sim {
  readonly rng: Random
  readonly sched = new Scheduler()
  readonly protocol: Protocol
  readonly invariants: Invariants
  readonly net: SimNetwork
  readonly service: boolean
  readonly retain: number | undefined
  faults: Faults
  readonly coordinator: SimCoordinator
  readonly participants: SimParticipant[]
  readonly trace: string[] = []
  readonly disk: DiskCounts = { failedWrites: 0, stalls: 0, diskFaults: 0 }
  readonly counts = { crashes: 0, partitions: 0, steps: 0 }
  /** Transactions the clients have started (a client retries them after a restart). */
  readonly started: Workload = []
  #unstarted: number

  constructor(readonly config: SimConfig) {
    this.rng = random(config.seed)
    this.protocol = config.protocol ?? {}
    this.faults = config.faults
    this.service = config.service ?? config.seed % 2 === 1
    this.retain = config.retain ?? ([1, 3].includes(config.seed % 5) ? 2 : undefined)
    const node = (id: string): SimNode => ({
      id,
      up: true,
      epoch: 0,
      app: null,
      downUntil: 0,
      disk: new Disk(this.sched, this.rng, this.disk),
      view: '',
    })
    this.coordinator = { ...node('c'), node: null, records: [], folded: new Set() }
    this.participants = Array.from({ length: config.participants }, (_, i) => {
      const data = new Map(Object.entries(config.data[`p${i}`] ?? {}))
      return {
        ...node(`p${i}`),
        node: null,
        durable: { records: [], data, applied: new Set(), folded: new Set() },
      }
    })
    // The nodes of this class, not of a subclass (not built yet): it adds its own.
    const own: SimNode[] = [this.coordinator, ...this.participants]
    const hosts = new Map<string, Host>(own.map((n) => [n.id, n]))
    const faults = () => this.faults
    this.net = new SimNetwork(this.sched, this.rng, hosts, faults, this.observer(), (line) =>
      this.log(line),
    )
    this.invariants = new Invariants(this)
    this.#unstarted = config.workload.length
    for (const w of config.workload) this.sched.at(w.at, () => this.begin(w))
  }

  get now(): number {
    return this.sched.now
  }

  log(line: string): void {
    this.trace.push(`${String(this.now).padStart(5)} ${line}`)
    if (!this.config.fullTrace && this.trace.length > 600) this.trace.splice(0, 300)
  }

  /** Starts every node, runs the fault phase, heals everything, then runs until quiet; true if
   * it got there. */
  async run(maxMs = 60_000): Promise<boolean> {
    await this.startCoordinators()
    for (const p of this.participants) await this.startParticipant(p)
    const faultEnd = this.config.faultPhaseMs ?? 1500
    while (this.now < faultEnd) await this.step()
    this.heal()
    if (this.config.coordinatorDies) this.crash(this.coordinator, Infinity)
    while (this.now < faultEnd + maxMs) {
      if (this.quiescent()) return true
      await this.step()
    }
    return this.quiescent()
  }

  async step(): Promise<void> {
    this.counts.steps += 1
    this.injectFaults()
    const next = this.sched.nextAt()
    if (next > this.now) this.sched.now = next
    await this.restartDue()
    for (const event of this.sched.takeDue()) {
      event.fn()
      await settle()
      if (this.invariants.violation) throw this.invariants.violation
    }
    this.invariants.afterStep()
  }

  /** No more faults: crashed nodes restart, cut links heal, disks work. */
  heal(): void {
    this.log('heal: no more faults')
    this.faults = { ...this.faults, drop: 0, duplicate: 0, crash: 0, partition: 0 }
    this.faults = { ...this.faults, crashAfterPersist: 0, diskFail: 0, diskStall: 0 }
    for (const n of this.nodes()) {
      if (!n.up) n.downUntil = this.now
      n.disk.failingUntil = 0
      n.disk.stallUntil = 0
    }
    this.net.cut.clear()
    this.net.split = null
  }

  /** Every transaction started, decided durably and done, and no participant holds anything. */
  quiescent(): boolean {
    if (this.config.coordinatorDies) return this.participantsQuiet()
    if (this.#unstarted > 0) return false
    if (!this.nodes().every((n) => n.up)) return false
    const c = this.coordinator.node
    if (c === null) return false
    for (const t of c.txns.values()) {
      if (t.phase !== 'done' || t.unlogged !== null || !t.logged) return false
    }
    return this.participantsQuiet()
  }

  /** Every participant up, none waiting for an outcome, none holding a lock. */
  protected participantsQuiet(): boolean {
    for (const p of this.participants) {
      if (p.node === null) return false
      for (const t of p.node.txns.values()) {
        if (t.state === 'prepared' || t.state === 'precommitted' || t.state === 'preaborted') {
          return false
        }
      }
      if (p.node.store.locks().size > 0) return false
    }
    return true
  }

  /** Whether `id` names a coordinator. */
  isCoordinator(id: string): boolean {
    return id === 'c'
  }

  /** Every record the coordinators' log holds. */
  loggedRecords(): CoordinatorRecord[] {
    return this.coordinator.records
  }

  /** What the coordinators know of `txn` at the end (a folded one rebuilt). */
  finalOf(txn: string): CoordinatorTxn | undefined {
    return this.coordinator.node?.txn(txn)
  }

  participant(url: string): SimParticipant {
    return this.participants.find((p) => urlOf(p.id) === url || p.id === url)!
  }

  protected nodes(): SimNode[] {
    return [this.coordinator, ...this.participants]
  }

  protected injectFaults(): void {
    const f = this.faults
    const node = () => this.rng.pick(this.nodes())
    if (f.crash > 0 && this.rng.chance(f.crash)) {
      const n = node()
      if (n.up) this.crash(n, this.now + this.rng.int(20, 400))
    }
    if (f.partition > 0 && this.rng.chance(f.partition)) {
      const n = node()
      this.net.cut.set(n.id, this.now + this.rng.int(20, 500))
      this.counts.partitions += 1
      this.log(`partition: ${n.id} cut off`)
    }
    if (this.config.threePhase && f.partition > 0 && this.rng.chance(f.partition)) this.#split()
    if (f.diskFail > 0 && this.rng.chance(f.diskFail)) {
      const n = node()
      n.disk.failingUntil = this.now + this.rng.int(20, 400)
      this.disk.diskFaults += 1
      this.log(`disk: ${n.id} fails every write until ${n.disk.failingUntil}`)
    }
    if (f.diskStall > 0 && this.rng.chance(f.diskStall)) {
      const n = node()
      n.disk.stallUntil = this.now + this.rng.int(20, 300)
      this.disk.stalls += 1
      this.log(`disk: ${n.id} stalls until ${n.disk.stallUntil}`)
    }
    for (const [id, until] of this.net.cut) {
      if (until <= this.now) {
        this.net.cut.delete(id)
        this.log(`partition: ${id} healed`)
      }
    }
    if (this.net.split !== null && this.net.split.until <= this.now) {
      this.net.split = null
      this.log('partition: split healed')
    }
  }

  /** A partition that splits the cluster in two sides (three-phase commit's hard case). */
  #split(): void {
    const side = new Set(
      this.nodes()
        .filter(() => this.rng.chance(0.5))
        .map((n) => n.id),
    )
    this.net.split = { side, until: this.now + this.rng.int(50, 600) }
    this.counts.partitions += 1
    this.log(`partition: {${[...side].join(',')}} split from the others`)
  }

  /** The node's process is gone: it loses everything it did not flush, and answers nothing. */
  crash(n: SimNode, until: number): void {
    n.up = false
    n.epoch += 1
    n.downUntil = until
    n.app = null
    this.counts.crashes += 1
    this.log(`crash ${n.id}`)
    // Time must reach the restart even when every node is down and nothing else is due.
    if (Number.isFinite(until)) this.sched.at(until, () => {})
    if (n === this.coordinator) {
      this.protocol.onCrash?.(this.coordinator.records)
      this.coordinator.node = null
    } else {
      const p = n as SimParticipant
      this.protocol.onCrash?.(p.durable.records)
      p.node = null
    }
  }

  protected async restartDue(): Promise<void> {
    for (const n of this.nodes()) {
      if (n.up || n.downUntil > this.now) continue
      n.up = true
      this.log(`restart ${n.id}`)
      if (n === this.coordinator) await this.startCoordinators()
      else await this.startParticipant(n as SimParticipant)
    }
  }

  /** The clock, timers and network of `n` in its current life: a later life never hears what
   * an earlier one asked for. */
  protected ports(n: SimNode): Ports {
    const epoch = n.epoch
    const alive = () => n.up && n.epoch === epoch
    const sched = this.sched
    // A stalled node's timers fire once it runs again.
    const later = (ms: number, fn: () => void) =>
      sched.at(sched.now + ms, () => this.net.whenRunning(n, fn))
    return {
      now: () => sched.now,
      every(ms, fn) {
        let on = true
        const tick = () => {
          if (!on || !alive()) return
          fn()
          later(ms, tick)
        }
        later(ms, tick)
        return () => void (on = false)
      },
      sleep: (ms) => new Promise((resolve) => later(ms, () => alive() && resolve())),
      request: (method, url, body, timeoutMs) =>
        this.net.request(n, epoch, method, url, body, timeoutMs),
      warn: (line) => this.log(`${n.id} warns: ${line}`),
    }
  }

  protected writer<T>(n: SimNode, lazyMs: number) {
    const epoch = n.epoch
    const alive = () => n.up && n.epoch === epoch
    const crashAfter = () => {
      if (!this.rng.chance(this.faults.crashAfterPersist)) return false
      this.crash(n, this.now + this.rng.int(20, 300))
      return true
    }
    return (write: (group: T[]) => void) =>
      new GroupWriter<T>(n.disk, alive, write, crashAfter, lazyMs)
  }

  /** A view in memory: what the node would show in its text file. */
  protected view(n: SimNode): (render: () => string) => View {
    return (render) => ({
      refresh: async () => void (n.view = render()),
      refreshSoon: () => void (n.view = render()),
      settle: async () => {},
    })
  }

  protected async startCoordinators(): Promise<void> {
    const c = this.coordinator
    const epoch = c.epoch
    const log = new SimLog(c.records, c.folded, this.writer(c, 20), (r) => {
      this.log(`c logged ${r.type} ${r.txn}${r.type === 'decision' ? ` ${r.decision}` : ''}`)
      this.invariants.onCoordinatorPersist(r)
    })
    const node = new CoordinatorNode({
      dir: '/sim/c',
      timeoutMs: 150,
      requestMs: 60,
      backoff: { baseMs: 5, capMs: 80 },
      tickMs: 5,
      prng: this.rng.next,
      ...(this.service ? { selfUrl: urlOf('c') } : {}),
      alwaysBatch: this.service,
      lazyAborts: this.service,
      onePhase: this.service,
      retryUndecided: !this.service,
      log: this.protocol.wrapLog ? this.protocol.wrapLog(log) : log,
      view: this.view(c),
      ports: this.ports(c),
      ...(this.retain !== undefined ? { retain: this.retain } : {}),
      ...(this.protocol.coordinator ? { core: this.protocol.coordinator } : {}),
    })
    c.node = node
    await node.start()
    if (c.epoch !== epoch) return
    const participants = this.participants.map((p) => urlOf(p.id))
    c.app = this.service ? createCoordinatorApp(node, { participants, ackWaitMs: 0 }) : null
    // A client that got no answer asks again; a batch coordinator is run again with its list.
    for (const w of this.started) this.#run(node, w)
  }

  protected async startParticipant(p: SimParticipant): Promise<void> {
    const epoch = p.epoch
    const forcedNo = (txn: string) =>
      this.config.workload.find((w) => w.txn === txn)?.no.includes(p.id) ?? false
    const store = new SimStore(p.durable, this.writer(p, 0), forcedNo, (record) => {
      this.log(`${p.id} logged ${record.state} ${record.txn}`)
      this.invariants.onParticipantPersist(p, record)
    })
    const node = new ParticipantNode(`/sim/${p.id}`, null, {
      inDoubtAfterMs: 250,
      tickMs: 20,
      requestMs: 60,
      prng: this.rng.next,
      backoff: { baseMs: 20, capMs: 200 },
      store: this.protocol.wrapStore ? this.protocol.wrapStore(store) : store,
      view: this.view(p),
      ports: this.ports(p),
      ...(this.retain !== undefined ? { retain: this.retain } : {}),
      ...(this.protocol.participantStep ? { step: this.protocol.participantStep } : {}),
    })
    p.node = node
    await node.start()
    // Batches unbounded: the bound's timers would shift every seed's trace, and its answer (a
    // 503, no answer yet) is what the simulated network's lost answers already are.
    const unbounded = { batchWaitMs: Infinity }
    if (p.epoch === epoch) p.app = createApp(node, undefined, unbounded) as Hono
  }

  protected begin(w: Workload[number]): void {
    const c = this.coordinator
    // A client whose coordinator is down tries again once it is up.
    if (!c.up || c.node === null) {
      // One that dies for good never starts it: nothing of it is anywhere to finish.
      if (Number.isFinite(c.downUntil)) this.sched.at(c.downUntil + 1, () => this.begin(w))
      return
    }
    this.#unstarted -= 1
    this.started.push(w)
    this.log(`begin ${w.txn} on ${Object.keys(w.ops).join(',')}`)
    this.#run(c.node, w)
  }

  #run(node: CoordinatorNode, w: Workload[number]): void {
    const ops: Record<string, readonly Op[]> = {}
    for (const [id, list] of Object.entries(w.ops)) ops[urlOf(id)] = list
    const protocol = this.config.threePhase ? '3pc' : '2pc'
    node.run(w.txn, Object.keys(ops), ops, protocol).catch(() => {})
  }

  /** The checks read off the wire. A violation is kept by the invariants and raised by the
   * loop: thrown here it would only unwind the node's own promise chain. */
  protected observer() {
    const quietly = (check: () => void) => {
      try {
        check()
      } catch {}
    }
    return {
      onRequest: (from: string, to: string, path: string, body: unknown) =>
        quietly(() => this.invariants.onRequest(from, to, path, body)),
      onAnswer: (host: string, path: string, _body: unknown, reply: WireReply) =>
        quietly(() => this.invariants.onAnswer(host, path, reply)),
    }
  }
}

export function createSim(config: SimConfig): Sim {
  return new Sim(config)
}
