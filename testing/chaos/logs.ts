// Each node's output, kept in logs/<name>.log across its restarts: stdout as is, stderr lines
// marked `! ` so the errors a node logged can be counted in the report.
import { join } from 'node:path'
import type { Subprocess } from 'bun'
import type { ChaosNode } from './types.ts'
import { appendLine, readText } from './util.ts'

/** Reads the node's stdout up to "listening on URL" (within `ms`), copying stdout and stderr
 * (stderr lines marked `! `) to its log file, and keeps copying afterwards; `copied` resolves
 * once both are closed and copied (the process is gone), so its last lines can be read. */
export async function listening(
  proc: Subprocess<'ignore', 'pipe', 'pipe'>,
  logFile: string,
  ms: number,
): Promise<{ url: string; copied: Promise<unknown> }> {
  const stderr = copyLines(proc.stderr.getReader(), logFile, '! ')
  const reader = proc.stdout.getReader()
  const decoder = new TextDecoder()
  let text = ''
  const timeout = setTimeout(() => proc.kill('SIGKILL'), ms)
  try {
    for (;;) {
      const match = /listening on (https?:\/\/\S+)/.exec(text)
      if (match) {
        return { url: match[1]!, copied: Promise.all([stderr, copyLines(reader, logFile, '')]) }
      }
      const { value, done } = await reader.read()
      if (done) {
        await stderr
        const tail = readText(logFile).split('\n').slice(-5).join(' | ')
        throw new Error(`exited before listening (code ${await proc.exited}): ${tail}`)
      }
      const chunk = decoder.decode(value, { stream: true })
      text += chunk
      appendLine(logFile, chunk)
    }
  } finally {
    clearTimeout(timeout)
  }
}

async function copyLines(
  reader: { read(): Promise<{ done: boolean; value?: Uint8Array }> },
  logFile: string,
  mark: string,
): Promise<void> {
  const decoder = new TextDecoder()
  let partial = ''
  try {
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      const lines = (partial + decoder.decode(value, { stream: true })).split('\n')
      partial = lines.pop()!
      for (const line of lines) appendLine(logFile, `${mark}${line}\n`)
    }
  } catch {}
  if (partial !== '') appendLine(logFile, `${mark}${partial}\n`)
}

/** The line a node prints on stderr at each start, saying whom it hears: no error. */
const TRUST_LINE = /^! (participant|coordinator): (no --secret-file|requests must prove)/

/** What the node's log file holds since its last start: the output of the running process. */
export function sinceLastStart(root: string, node: ChaosNode): string {
  const text = readText(join(root, 'logs', `${node.name}.log`))
  return text.slice(text.lastIndexOf('--- start '))
}

/** The stderr lines of every node (an error a node logged), over all its restarts. */
export function readNodeErrors(root: string, nodes: readonly ChaosNode[]) {
  const lines: string[] = []
  for (const n of nodes) {
    for (const line of readText(join(root, 'logs', `${n.name}.log`)).split('\n')) {
      if (line.startsWith('! ') && !TRUST_LINE.test(line)) lines.push(`${n.name}: ${line.slice(2)}`)
    }
  }
  return { count: lines.length, first: lines.slice(0, 5) }
}
