// Starting real nodes as child processes: shared by the demo, the benchmarks and the tests.
import { writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import type { Subprocess } from 'bun'

export const ROOT = resolve(import.meta.dir, '..')

/** A command that runs a node: `bun participant.ts` by default, or a compiled binary. */
export type Command = readonly string[]
export const PARTICIPANT: Command = [process.execPath, join(ROOT, 'participant.ts')]
export const COORDINATOR: Command = [process.execPath, join(ROOT, 'coordinator.ts')]

export type NodeProcess = Subprocess<'ignore', 'pipe', 'pipe'>
export type Node = { proc: NodeProcess; url: string; port: number; dir: string }

export type ParticipantOptions = {
  /** The text of votes.txt; none is written when absent. */
  votes?: string
  port?: number
  env?: Record<string, string | undefined>
  args?: string[]
  command?: Command
}

/** Starts a participant in `dir` on loopback and resolves once it is listening. */
export async function spawnParticipant(
  dir: string,
  options: ParticipantOptions = {},
): Promise<Node> {
  if (options.votes !== undefined) writeFileSync(join(dir, 'votes.txt'), options.votes)
  const env = { PORT: String(options.port ?? 0), HOST: '127.0.0.1', ...options.env }
  return spawnNode([...(options.command ?? PARTICIPANT), ...(options.args ?? [])], dir, env)
}

export type ServiceOptions = {
  participants: readonly string[]
  port?: number
  args?: string[]
  env?: Record<string, string | undefined>
  command?: Command
}

/** Starts `coordinator.ts serve` in `dir` on loopback and resolves once it is listening. */
export function spawnCoordinatorService(dir: string, options: ServiceOptions): Promise<Node> {
  const args = ['serve', '--host', '127.0.0.1', '--port', String(options.port ?? 0)]
  for (const p of options.participants) args.push('--participant', p)
  const command = options.command ?? COORDINATOR
  return spawnNode([...command, ...args, ...(options.args ?? [])], dir, options.env ?? {})
}

/** Runs `command` in `dir` and resolves once it prints "listening on URL". */
export async function spawnNode(
  command: readonly string[],
  dir: string,
  env: Record<string, string | undefined>,
): Promise<Node> {
  const proc = Bun.spawn([...command], {
    cwd: dir,
    env: { ...cleanEnv(), ...env },
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  })
  const url = await listeningUrl(proc)
  return { proc, url, port: Number(new URL(url).port), dir }
}

/** Reads stdout up to the "listening on URL" line, then keeps draining it (and stderr) so the
 * child never blocks on a full pipe. */
export async function listeningUrl(proc: NodeProcess): Promise<string> {
  const reader = proc.stdout.getReader()
  const decoder = new TextDecoder()
  let text = ''
  for (;;) {
    const match = /listening on (https?:\/\/\S+)/.exec(text)
    if (match) {
      void drain(reader)
      void drain(proc.stderr.getReader())
      return match[1]!
    }
    const { value, done } = await reader.read()
    if (done) {
      const stderr = await new Response(proc.stderr).text()
      throw new Error(`node exited before listening (code ${await proc.exited}): ${stderr}${text}`)
    }
    text += decoder.decode(value)
  }
}

async function drain(reader: { read(): Promise<{ done: boolean }> }): Promise<void> {
  try {
    while (!(await reader.read()).done);
  } catch {}
}

/** The PEER_PARTICIPANT<N>_HOST/PORT variables for `nodes`. */
export function peerEnv(nodes: readonly { port: number }[]): Record<string, string> {
  const env: Record<string, string> = {}
  nodes.forEach((n, i) => {
    env[`PEER_PARTICIPANT${i}_HOST`] = '127.0.0.1'
    env[`PEER_PARTICIPANT${i}_PORT`] = String(n.port)
  })
  return env
}

/** The environment without PEER_PARTICIPANT variables or failpoints, for a node of our own. */
export function cleanEnv(): Record<string, string> {
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !k.startsWith('PEER_PARTICIPANT') && k !== 'TWOPHASE_FAILPOINTS')
      env[k] = v
  }
  return env
}
