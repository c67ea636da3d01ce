// The chaos run's processes: three participants and a coordinator service started in a temp
// directory, and the faults done to them (SIGKILL and restart, SIGSTOP stalls), with the
// bookkeeping that guarantees no process outlives the run. A secure cluster's nodes have a
// secret, client tokens and mutual TLS, with the same flags at every restart.
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import type { Subprocess } from 'bun'
import { makeKeys, type Auth, type Bank } from '../bank.ts'
import { COORDINATOR, PARTICIPANT, cleanEnv } from '../nodes.ts'
import { listening } from './logs.ts'
import type { ChaosNode } from './types.ts'
import { appendLine, message } from './util.ts'

export type ClusterOptions = { inDoubtAfterMs: number; timeoutMs: number; secure: boolean }

export class Cluster {
  readonly procs = new Set<Subprocess>()
  /** The coordinator first (once it is up), then the participants. */
  readonly nodes: ChaosNode[] = []
  /** Pending SIGCONTs of stalls, and kills whose restart is under way. */
  readonly timers = new Set<Timer>()
  readonly pending = new Set<Promise<void>>()
  /** Problems of the run itself (a node that would not restart), not invariants. */
  readonly errors: string[] = []
  readonly kills: Record<string, number> = {}
  readonly stalls: Record<string, number> = {}
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

  // The last resort: whatever happens, no node outlives this process.
  private readonly onExit = () => {
    for (const proc of this.procs) {
      try {
        proc.kill('SIGCONT')
        proc.kill('SIGKILL')
      } catch {}
    }
  }

  clock = (): string => `${((performance.now() - this.faultStart) / 1000).toFixed(2)} s`

  get coordinator(): ChaosNode {
    return this.nodes[0]!
  }

  /** Starts the participants first (the coordinator needs their URLs), each on port 0 the first
   * time and on the same port at every restart, then the coordinator. The bank returned reads
   * with the secret (the checks); the clients use `clientAuth`. */
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
      this.nodes.push(node)
    }
    const participants = this.nodes.map((n) => n.url)
    const coordinator = chaosNode(
      'coordinator',
      join(this.root, 'coordinator'),
      (port) => [
        ...coordinatorArgv(port, participants, options.timeoutMs),
        ...keys.nodeFlags,
        ...keys.serveFlags,
      ],
      () => ({}),
    )
    mkdirSync(coordinator.dir)
    await this.launch(coordinator)
    this.nodes.unshift(coordinator)
    for (const n of this.nodes) this.kills[n.name] = 0
    for (const n of this.nodes.slice(1)) this.stalls[n.name] = 0
    return { coordinator: coordinator.url, participants, auth: keys.nodeAuth }
  }

  /** Starts `node` on its port, retrying a few times: a port just freed may still be taken. */
  async launch(node: ChaosNode): Promise<void> {
    for (let attempt = 1; ; attempt++) {
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
        const url = await listening(proc, logFile, 20_000)
        node.proc = proc
        node.port = Number(new URL(url).port)
        node.url = url
        return
      } catch (error) {
        proc.kill('SIGKILL')
        await proc.exited
        if (attempt >= 5 || this.stopping)
          throw new Error(`${node.name} would not start: ${message(error)}`)
        await Bun.sleep(100 * attempt)
      }
    }
  }

  /** Kills `node` now and restarts it `downMs` later, in the background (see `track`). */
  kill(node: ChaosNode, downMs: number): void {
    this.track(this.killAndRestart(node, downMs))
  }

  private async killAndRestart(node: ChaosNode, downMs: number): Promise<void> {
    node.busy = true
    try {
      const proc = node.proc!
      if (node.stall !== null) proc.kill('SIGCONT') // a stopped process is woken before it dies
      node.stall = null
      proc.kill('SIGKILL')
      await proc.exited
      node.proc = null
      this.kills[node.name] = (this.kills[node.name] ?? 0) + 1
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
   * anything down comes back; throws the first error of a restart. */
  async endFaults(aborted: () => boolean): Promise<void> {
    this.clearTimers()
    for (const n of this.nodes) this.resume(n)
    await Promise.all(this.pending)
    for (const n of this.nodes) if (n.proc === null && !aborted()) await this.launch(n)
    if (this.errors.length > 0) throw new Error(this.errors[0])
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
