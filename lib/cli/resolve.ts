// The operator's escape hatch: force the outcome of a transaction whose coordinator is gone for
// good. Recorded as heuristic; refused when it contradicts an outcome the participant knows.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { writeFileAtomicSync } from '../store/atomic-file.ts'
import { PARTICIPANT_DB } from '../store/sqlite-store.ts'
import { UsageError } from '../core/errors.ts'
import type { Decision, Reply } from '../core/index.ts'
import { ParticipantNode } from '../node/participant-node.ts'
import { bunPorts, type Ports } from '../node/ports.ts'
import { decodeReply } from '../wire/participant.ts'

const ADDRESS_FILE = 'participant.json'

/** Records where the participant serving `dir` listens, so tools can find it. */
export function writeAddressFile(dir: string, url: string): void {
  const local = url.replace('//0.0.0.0:', '//127.0.0.1:').replace('//[::]:', '//[::1]:')
  writeFileAtomicSync(
    join(dir, ADDRESS_FILE),
    `${JSON.stringify({ url: local, pid: process.pid })}\n`,
  )
}

/** Resolves `txn` through the running participant of `dir` if there is one (it holds the
 * transaction's locks and its in-memory state), or directly in its log if none runs. */
export async function resolveHeuristically(
  dir: string,
  txn: string,
  decision: Decision,
  ports: Ports = bunPorts,
): Promise<string> {
  const running = runningParticipant(dir)
  // Offline, only into a log that exists: a wrong --dir must not become a new participant.
  if (!running && !existsSync(join(dir, PARTICIPANT_DB))) {
    throw new UsageError(
      `no participant log in ${dir} (no ${PARTICIPANT_DB}, and no participant runs there); ` +
        "pass the participant's directory with --dir",
    )
  }
  const reply = running
    ? await resolveOnline(running, txn, decision, ports)
    : await resolveOffline(dir, txn, decision)
  if (reply.kind === 'conflict' || reply.kind === 'unavailable') throw new Error(reply.error)
  if (reply.kind !== 'outcome') throw new Error(`unexpected answer resolving ${txn}`)
  return `${txn}=${reply.state} (heuristic)`
}

function runningParticipant(dir: string): { url: string; pid: number } | null {
  const path = join(dir, ADDRESS_FILE)
  if (!existsSync(path)) return null
  try {
    const address = JSON.parse(readFileSync(path, 'utf8')) as { url: string; pid: number }
    process.kill(address.pid, 0)
    return address
  } catch {
    return null // that process is gone, or the file is not one a participant wrote
  }
}

async function resolveOnline(
  running: { url: string; pid: number },
  txn: string,
  decision: Decision,
  ports: Ports,
): Promise<Reply> {
  // Through the running node, with the cluster's proof when it has a secret: an operator's
  // action needs the secret, as a coordinator's does.
  const url = `${running.url}/resolve`
  const answer = await ports.request('POST', url, { txn, decision }, 30_000)
  if (answer === null) {
    throw new Error(
      `the participant (pid ${running.pid}) runs but does not answer at ${running.url}`,
    )
  }
  const reply = decodeReply(txn, answer.status, answer.body)
  if (reply === null || reply.kind === 'unavailable') {
    const error = (answer.body as { error?: unknown } | null)?.error
    throw new Error(typeof error === 'string' ? error : `HTTP ${answer.status}`)
  }
  return reply
}

async function resolveOffline(dir: string, txn: string, decision: Decision): Promise<Reply> {
  const node = new ParticipantNode(dir, null)
  try {
    await node.start()
    return await node.handle({ type: 'resolve', txn, decision })
  } finally {
    await node.close()
  }
}
