// The bench's cluster: three participants and `coordinator.ts serve`, each started in its own
// directory under the bench's root and timed from its spawn until GET /healthz answers; stopped
// with SIGTERM; and what each process holds: its resident memory and its files on disk.
import { mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import {
  COORDINATOR,
  PARTICIPANT,
  cleanEnv,
  spawnCoordinatorService,
  spawnParticipant,
  type Command,
  type Node,
} from '../../testing/nodes.ts'
import { nodesOf, type Cluster, type Settings } from './level.ts'

/** A started cluster, and each node's milliseconds from spawn to healthy (coordinator first). */
export type Started = { cluster: Cluster; startMs: number[] }

/** Starts the cluster in `s.root` (the same directories each time), one node after the other,
 * the participants first; on `ports` (coordinator first) when given, as a restart does. */
export async function startCluster(s: Settings, started: Node[], ports?: number[]) {
  const participants: Node[] = []
  const startMs: number[] = []
  for (let i = 0; i < 3; i++) {
    const dir = join(s.root, `p${i}`)
    mkdirSync(dir, { recursive: true })
    const options = { port: ports?.[i + 1], args: s.participantArgs }
    const { node, ms } = await timed(() => spawnParticipant(dir, options), started)
    participants.push(node)
    startMs.push(ms)
  }
  const dir = join(s.root, 'coordinator')
  mkdirSync(dir, { recursive: true })
  // By default the service's own --ack-wait: each client is answered once every participant
  // acknowledged. --ack-wait 0 answers at the commit point (its decision durable), with the
  // commits reaching the participants in the background: favourable, and labelled so.
  const options = {
    participants: participants.map((p) => p.url),
    port: ports?.[0],
    args: ['--ack-wait', String(s.ackWait), ...s.coordinatorArgs],
  }
  const { node, ms } = await timed(() => spawnCoordinatorService(dir, options), started)
  return { cluster: { coordinator: node, participants }, startMs: [ms, ...startMs] }
}

async function timed(start: () => Promise<Node>, started: Node[]) {
  const t0 = performance.now()
  const node = await start()
  started.push(node)
  await healthy(node.url)
  return { node, ms: performance.now() - t0 }
}

/** Resolves once GET /healthz at `url` answers 200. */
async function healthy(url: string): Promise<void> {
  const deadline = Date.now() + 60_000
  for (;;) {
    try {
      if ((await fetch(`${url}/healthz`)).ok) return
    } catch {}
    if (Date.now() > deadline) throw new Error(`${url}/healthz did not answer within 60 s`)
    await Bun.sleep(1)
  }
}

export type Stopped = { ms: number; code: number | null; signal: string | null }

/** SIGTERM to every node in turn (the coordinator first), each awaited before the next; a node
 * still running after 60 s is killed (its `code` is then null). */
export async function stopCluster(cluster: Cluster): Promise<Stopped[]> {
  const stopped: Stopped[] = []
  for (const node of nodesOf(cluster)) {
    const t0 = performance.now()
    node.proc.kill('SIGTERM')
    // A timer cleared once the node is out: a pending one would hold the bench's exit back.
    const timer = setTimeout(() => node.proc.kill('SIGKILL'), 60_000)
    await node.proc.exited
    clearTimeout(timer)
    const ms = performance.now() - t0
    const signal = node.proc.signalCode === null ? null : String(node.proc.signalCode)
    stopped.push({ ms, code: node.proc.exitCode, signal })
  }
  return stopped
}

/** The resident memory of process `pid` (VmRSS), in bytes. */
export function rssBytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return match ? Number(match[1]) * 1024 : NaN
}

/** The files a node keeps: its log (with SQLite's -wal and -shm) and its view. */
const NODE_FILE = /^(participant\.db|coordinator\.db)(-.*)?$|^(state|decision)\.txt$/

/** The size of each file in `dir` (files only, not below it), by name. */
export function filesOf(dir: string): Record<string, number> {
  const sizes: Record<string, number> = {}
  for (const name of readdirSync(dir).sort()) {
    try {
      const stat = statSync(join(dir, name))
      if (stat.isFile()) sizes[name] = stat.size
    } catch {} // gone meanwhile (a -shm file at a checkpoint)
  }
  return sizes
}

/** The bytes of the node's own files among `files` (participant.db*, coordinator.db*, the view). */
export function nodeBytes(files: Record<string, number>): number {
  let sum = 0
  for (const [name, size] of Object.entries(files)) if (NODE_FILE.test(name)) sum += size
  return sum
}

/** The files worth a look: the node's own, and any other of 64 KiB or more. */
export function notableFiles(files: Record<string, number>): [string, number][] {
  return Object.entries(files).filter(([name, size]) => NODE_FILE.test(name) || size >= 65536)
}

/** Whether `command --help` lists `flag` among the flags of `section` (the text from the line
 * `section` to the next blank line; all of it when no such line). */
export function takesFlag(command: Command, flag: string, section: string): boolean {
  const run = Bun.spawnSync([...command, '--help'], { env: cleanEnv(), stderr: 'pipe' })
  const text = run.stdout.toString()
  const at = text.indexOf(`\n${section}\n`)
  const end = at < 0 ? -1 : text.indexOf('\n\n', at + 1)
  const part = at < 0 ? text : text.slice(at, end < 0 ? undefined : end)
  return new RegExp(`^\\s+${flag}(\\s|$)`, 'm').test(part)
}

/** Where `--retain R` goes: to the participants if `participant.ts --help` lists it, to the
 * service if `coordinator.ts serve --help` does; `note` is told about each that does not. */
export function retainArgs(retain: string, note: (line: string) => void) {
  const args = ['--retain', retain]
  const participant = takesFlag(PARTICIPANT, '--retain', 'flags:')
  const coordinator = takesFlag([...COORDINATOR, 'serve'], '--retain', 'serve flags:')
  if (!participant) note('note: participant.ts --help lists no --retain: started without it')
  if (!coordinator) note('note: coordinator.ts serve --help lists no --retain: started without it')
  return {
    participantArgs: participant ? args : [],
    coordinatorArgs: coordinator ? args : [],
    retain: { value: Number(retain), participant, coordinator },
  }
}
