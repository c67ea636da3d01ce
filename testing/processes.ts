// Real nodes for end-to-end tests: each in its own temp directory, on a free loopback port,
// waited on through the line it prints once listening, and killed only by the test that started it.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Subprocess } from 'bun'
import {
  COORDINATOR,
  ROOT,
  cleanEnv,
  spawnCoordinatorService,
  spawnParticipant,
  type Command,
  type ServiceOptions,
  type Node,
  type NodeProcess,
  type ParticipantOptions,
} from './nodes.ts'

export { peerEnv, type Command, type Node } from './nodes.ts'

const started = new Set<Subprocess>()
const dirs: string[] = []

export function tempDir(prefix = 'twophase-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  dirs.push(dir)
  return dir
}

/** Kills every process this test file started and removes its temp directories. */
export async function cleanup(): Promise<void> {
  for (const proc of started) proc.kill('SIGKILL')
  await Promise.all([...started].map((p) => p.exited))
  started.clear()
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
}

/** Starts a participant in `dir` (see testing/nodes.ts) that `cleanup` will kill. */
export async function startParticipant(
  dir: string,
  options: ParticipantOptions = {},
): Promise<Node> {
  const node = await spawnParticipant(dir, options)
  started.add(node.proc)
  return node
}

/** Starts `coordinator.ts serve` in `dir` that `cleanup` will kill. */
export async function startCoordinatorService(dir: string, options: ServiceOptions): Promise<Node> {
  const node = await spawnCoordinatorService(dir, options)
  started.add(node.proc)
  return node
}

export async function postJson(url: string, body: unknown): Promise<{ status: number; body: any }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify(body),
  })
  return { status: response.status, body: await response.json() }
}

export type Run = { code: number; stdout: string; stderr: string }

/** Runs the batch coordinator in `dir` until it exits. */
export async function runCoordinator(
  dir: string,
  args: string[],
  options: { env?: Record<string, string>; command?: Command } = {},
): Promise<Run> {
  return outputOf(spawnCoordinator(dir, args, options))
}

/** Waits for a process that pipes stdout and stderr to exit: its exit code and output. */
export async function outputOf(proc: {
  stdout: ReadableStream<Uint8Array>
  stderr: ReadableStream<Uint8Array>
  exited: Promise<number>
}): Promise<Run> {
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ])
  return { code, stdout, stderr }
}

export function spawnCoordinator(
  dir: string,
  args: string[],
  options: { env?: Record<string, string>; command?: Command } = {},
): NodeProcess {
  const proc = Bun.spawn([...(options.command ?? COORDINATOR), ...args], {
    cwd: dir,
    env: { ...cleanEnv(), ...options.env },
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  })
  started.add(proc)
  return proc
}

/** Kills a node with SIGKILL and waits until it is gone. */
export async function kill(node: { proc: Subprocess }): Promise<void> {
  node.proc.kill('SIGKILL')
  await node.proc.exited
  started.delete(node.proc)
}

/** A port that was free a moment ago: for restarting a node on the address peers know. */
export function freePort(): number {
  const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Response() })
  const port = server.port!
  server.stop(true)
  return port
}

export async function getJson(url: string): Promise<any> {
  const response = await fetch(url)
  return response.json()
}

/** Polls `probe` until it returns true: a condition, not a sleep. Fails after `ms`. */
export async function waitFor(probe: () => Promise<boolean> | boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`)
    await Bun.sleep(10)
  }
}

/** Runs `command ARGS` (a node, a script, an example) in `cwd` (the project by default) until
 * it exits; `cleanup` kills it if the test ends first. */
export async function runCommand(
  command: Command,
  args: string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<Run> {
  const proc = Bun.spawn([...command, ...args], {
    cwd: options.cwd ?? ROOT,
    env: { ...cleanEnv(), ...options.env },
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  })
  started.add(proc)
  const run = await outputOf(proc)
  started.delete(proc)
  return run
}
