// The chaos run's processes: three participants and one coordinator service (or several on one
// log in PostgreSQL) started in a temp directory, and the faults done to them (SIGKILL and
// restart, SIGSTOP stalls, a crash of the log's PostgreSQL server), with the bookkeeping that
// guarantees no process outlives the run. A coordinator that stops by itself because its lease
// was taken over is restarted, as a supervisor would. A secure cluster's nodes have a secret,
// client tokens and mutual TLS, with the same flags at every restart.
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import type { Subprocess } from 'bun'
import { makeKeys, type Auth, type Bank } from '../bank.ts'
import { COORDINATOR, PARTICIPANT, cleanEnv } from '../nodes.ts'
import type { LogDb } from './log-db.ts'
import { listening, sinceLastStart } from './logs.ts'
import type { ChaosNode } from './types.ts'
import { appendLine, message } from './util.ts'

export type ClusterOptions = {
  inDoubtAfterMs: number
  timeoutMs: number
  secure: boolean
  coordinators: number
  leaseMs: number
}

/** What a coordinator prints when it finds its lease taken over, just before it exits 1. */
const FENCED_LINE = /lease of \S+ was taken over/

export class Cluster {
  readonly procs = new Set<Subprocess>()
  readonly coordinators: ChaosNode[] = []
  readonly participants: ChaosNode[] = []
  /** Pending SIGCONTs of stalls, and kills whose restart is under way. */
  readonly timers = new Set<Timer>()
  readonly pending = new Set<Promise<void>>()
  /** Problems of the run itself (a node that would not restart), not invariants. */
  readonly errors: string[] = []
  readonly kills: Record<string, number> = {}
  readonly stalls: Record<string, number> = {}
  /** Coordinators that stopped by themselves once their lease was taken over. */
  fencings = 0
  /** The shared log's database, with several coordinators (or `--log-db`): set before `start`. */
  logDb: LogDb | null = null
  /** What the clients' requests carry: a client token and TLS on a secure cluster. */
  clientAuth: Auth = {}
  /** Once set, a killed node stays down and a failed start is not retried. */
  stopping = false
  /** The clock counts from the run's start until the faults begin, then from there. */
  faultStart: number
  private stallSeq = 0

  constructor(
    readonly root: string,
    started: number,
  ) {
    this.faultStart = started
    process.on('exit', this.onExit)
  }

  // The last resort: whatever happens, no node outlives this process (nor the log's server).
  private readonly onExit = () => {
    for (const proc of this.procs) {
      try {
        proc.kill('SIGCONT')
        proc.kill('SIGKILL')
      } catch {}
    }
    this.logDb?.stopNow()
  }

  clock = (): string => `${((performance.now() - this.faultStart) / 1000).toFixed(2)} s`

  get coordinator(): ChaosNode {
    return this.coordinators[0]!
  }

  /** The coordinators first (once they are up), then the participants. */
  get nodes(): ChaosNode[] {
    return [...this.coordinators, ...this.participants]
  }

  /** Starts the participants first (the coordinators need their URLs), each on port 0 the
   * first time and on the same port at every restart, then the coordinators. The bank returned
   * reads with the secret (the checks) through the first coordinator; the clients use
   * `clientAuth`. */
  async start(options: ClusterOptions): Promise<Bank> {
    const secure = { secret: options.secure, tokens: options.secure, tls: options.secure }
    const keys = makeKeys(join(this.root, 'keys'), secure)
    this.clientAuth = keys.clientAuth
    for (let i = 0; i < 3; i++) {
      const dir = join(this.root, `participant${i}`)
      mkdirSync(dir)
      const inDoubt = ['--in-doubt-after', String(options.inDoubtAfterMs)]
      const node = chaosNode(
        `participant${i}`,
        dir,
        () => [...PARTICIPANT, ...inDoubt, ...keys.nodeFlags],
        (port) => ({ PORT: String(port), HOST: '127.0.0.1' }),
      )
      await this.launch(node)
      this.participants.push(node)
    }
    const participants = this.participants.map((n) => n.url)
    const shared = this.logDb ? ['--log-db', this.logDb.url, '--lease', `${options.leaseMs}`] : []
    for (let i = 0; i < options.coordinators; i++) {
      // One coordinator keeps the name it always had; several are numbered.
      const name = this.logDb && options.coordinators > 1 ? `coordinator${i}` : 'coordinator'
      const coordinator = chaosNode(
        name,
        join(this.root, name),
        (port) => [
          ...coordinatorArgv(port, participants, options.timeoutMs),
          ...shared,
          ...keys.nodeFlags,
          ...keys.serveFlags,
        ],
        () => ({}),
      )
      mkdirSync(coordinator.dir)
      await this.launch(coordinator)
      this.coordinators.push(coordinator)
    }
    for (const n of this.nodes) this.kills[n.name] = 0
    const stalled = this.logDb ? this.nodes : this.participants
    for (const n of stalled) this.stalls[n.name] = 0
    if (this.logDb?.server) this.kills.postgres = 0
    return { coordinator: this.coordinator.url, participants, auth: keys.nodeAuth }
  }

  /** Starts `node` on its port, retrying a few times: a port just freed may still be taken,
   * and a coordinator on a shared log fails to start while the database is down (it waits for
   * it to be up again). */
  async launch(node: ChaosNode): Promise<void> {
    const coordinator = node.name.startsWith('coordinator')
    const attempts = coordinator && this.logDb ? 10 : 5
    for (let attempt = 1; ; attempt++) {
      if (coordinator) await this.logDb?.whenUp()
      const proc = Bun.spawn(node.argv(node.port), {
        cwd: node.dir,
        env: { ...cleanEnv(), ...node.env(node.port) },
        stdin: 'ignore',
        stdout: 'pipe',
        stderr: 'pipe',
      })
      this.procs.add(proc)
      void proc.exited.then(() => this.procs.delete(proc))
      node.starts += 1
      const logFile = join(this.root, 'logs', `${node.name}.log`)
      const at = `${this.clock()}, ${new Date().toISOString()}`
      appendLine(logFile, `--- start ${node.starts} (pid ${proc.pid}) at ${at}\n`)
      try {
        const { url, copied } = await listening(proc, logFile, 20_000)
        node.proc = proc
        node.port = Number(new URL(url).port)
        node.url = url
        void proc.exited.then(async (code) => {
          await copied
          this.exited(node, proc, code)
        })
        return
      } catch (error) {
        proc.kill('SIGKILL')
        await proc.exited
        if (attempt >= attempts || this.stopping)
          throw new Error(`${node.name} would not start: ${message(error)}`)
        await Bun.sleep(100 * attempt)
      }
    }
  }

  /** A node that exited by itself. A coordinator that found its lease taken over is fenced:
   * it stopped as it must, and is started again as a supervisor would. Anything else is an
   * error of the run (and the node is started again, so the checks can still read it). */
  private exited(node: ChaosNode, proc: Subprocess, code: number): void {
    if (node.proc !== proc || node.busy || this.stopping) return
    node.proc = null
    node.stall = null
    const fenced =
      this.logDb !== null && code === 1 && FENCED_LINE.test(sinceLastStart(this.root, node))
    if (fenced) this.fencings += 1
    else this.errors.push(`${node.name} exited by itself with code ${code}`)
    this.track(this.restart(node, 0))
  }

  /** Kills `node` now and restarts it `downMs` later, in the background (see `track`). */
  kill(node: ChaosNode, downMs: number): void {
    const proc = node.proc!
    node.busy = true
    if (node.stall !== null) proc.kill('SIGCONT') // a stopped process is woken before it dies
    node.stall = null
    proc.kill('SIGKILL')
    this.kills[node.name] = (this.kills[node.name] ?? 0) + 1
    this.track(proc.exited.then(() => this.restart(node, downMs)))
  }

  /** Crashes the log's PostgreSQL server (SIGKILL) and starts it again `downMs` later. */
  crashLogDb(downMs: number): void {
    this.kills.postgres = (this.kills.postgres ?? 0) + 1
    this.track(this.logDb!.crash(downMs))
  }

  private async restart(node: ChaosNode, downMs: number): Promise<void> {
    node.busy = true
    node.proc = null
    try {
      await Bun.sleep(downMs)
      if (!this.stopping) await this.launch(node)
    } finally {
      node.busy = false
    }
  }

  /** SIGSTOPs `node` and SIGCONTs it after `ms`, unless something woke it meanwhile. */
  stall(node: ChaosNode, ms: number): void {
    const id = ++this.stallSeq
    node.proc!.kill('SIGSTOP')
    node.stall = id
    this.stalls[node.name] = (this.stalls[node.name] ?? 0) + 1
    const timer = setTimeout(() => {
      this.timers.delete(timer)
      this.resume(node, id)
    }, ms)
    this.timers.add(timer)
  }

  /** Wakes `node`; with `id`, only if it is still that stall (a late SIGCONT does nothing). */
  resume(node: ChaosNode, id?: number): void {
    if (node.stall === null || (id !== undefined && node.stall !== id)) return
    node.proc?.kill('SIGCONT')
    node.stall = null
  }

  /** Runs `p` in the background; its failure becomes an error of the run. */
  private track(p: Promise<void>): void {
    const tracked = p.catch((error) => void this.errors.push(message(error)))
    this.pending.add(tracked)
    void tracked.then(() => this.pending.delete(tracked))
  }

  /** The end of the faults: wakes every stalled node and waits for the restarts under way, so
   * anything down comes back; throws the first error of a restart. On a shared log, waits
   * until every coordinator holds its lease: one woken after its lease was taken over stops
   * and is started again. */
  async endFaults(aborted: () => boolean): Promise<void> {
    this.clearTimers()
    for (const n of this.nodes) this.resume(n)
    const deadline = performance.now() + 30_000
    for (;;) {
      await Promise.all(this.pending)
      for (const n of this.nodes) if (n.proc === null && !aborted()) await this.launch(n)
      if (this.errors.length > 0) throw new Error(this.errors[0])
      if (aborted() || (await this.leasesHeld())) return
      if (performance.now() > deadline) throw new Error('a coordinator holds no lease after 30 s')
      await Bun.sleep(50)
    }
  }

  /** Whether every coordinator holds a live lease on the shared log (always, without one). */
  private async leasesHeld(): Promise<boolean> {
    if (!this.logDb) return true
    const rows = await this.logDb
      .query(
        'SELECT name FROM twophase_coordinators ' +
          'WHERE taken_by IS NULL AND lease_until > clock_timestamp()',
      )
      .catch(() => [])
    const live = new Set(rows.map((r) => r.name))
    return this.coordinators.every((c) => live.has(c.url) && c.proc !== null && !c.busy)
  }

  /** Stops everything: no more restarts, then every process still running. */
  async shutdown(): Promise<void> {
    this.stopping = true
    this.clearTimers()
    await Promise.all(this.pending)
    await stopAll(this.procs)
  }

  /** Drops the exit handler, once every process is gone. */
  dispose(): void {
    process.off('exit', this.onExit)
  }

  private clearTimers(): void {
    for (const timer of this.timers) clearTimeout(timer)
    this.timers.clear()
  }
}

function chaosNode(
  name: string,
  dir: string,
  argv: ChaosNode['argv'],
  env: ChaosNode['env'],
): ChaosNode {
  return { name, dir, port: 0, url: '', argv, env, proc: null, stall: null, busy: false, starts: 0 }
}

function coordinatorArgv(port: number, participants: readonly string[], timeoutMs: number) {
  return [
    ...COORDINATOR,
    'serve',
    '--host',
    '127.0.0.1',
    '--port',
    String(port),
    ...participants.flatMap((p) => ['--participant', p]),
    '--timeout',
    String(timeoutMs),
  ]
}

/** Wakes and stops every process still running: SIGTERM, then SIGKILL after 3 s. */
async function stopAll(procs: Set<Subprocess>): Promise<void> {
  const running = [...procs]
  for (const proc of running) {
    proc.kill('SIGCONT')
    proc.kill('SIGTERM')
  }
  const gone = Promise.all(running.map((p) => p.exited))
  if ((await Promise.race([gone, Bun.sleep(3000).then(() => 'late')])) === 'late') {
    for (const proc of running) proc.kill('SIGKILL')
    await gone
  }
}
