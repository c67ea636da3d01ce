// Batch mode, the classic exercise's coordinator: transactions one after another, each
// decided and then delivered to every participant before the next begins.
import { CoordinatorNode } from './coordinator-node.ts'
import type { CoordinatorTxn } from '../core/index.ts'
import { UsageError } from '../core/errors.ts'

export type BatchOptions = {
  dir: string
  participants: readonly string[]
  txns: readonly string[]
  timeoutMs: number
  deliverTimeoutMs: number
  log?: (line: string) => void
}

/** Runs `txns` one after another and resolves to the reason the run is not clean, or null. */
export async function runBatch(options: BatchOptions): Promise<string | null> {
  const log = options.log ?? console.log
  // A re-run after a crash prepares again what it began and never decided: the operator asked
  // for these transactions, and no decision was sent.
  const node = new CoordinatorNode({
    dir: options.dir,
    timeoutMs: options.timeoutMs,
    retryUndecided: true,
  })
  try {
    await node.start()
    for (const txn of options.txns) {
      if (!node.txns.has(txn) && options.participants.length === 0) {
        throw new UsageError(
          'no participants configured: set PEER_PARTICIPANT0_HOST and ' +
            'PEER_PARTICIPANT0_PORT, or pass --participant host:port',
        )
      }
      const decided = await node.run(txn, options.participants)
      log(`${txn}=${decided.decision}`)
      const problem = await settle(node, txn, options.deliverTimeoutMs)
      if (problem) return problem
    }
    // Decisions an earlier run recorded but did not deliver are delivered too.
    for (const t of node.txns.values()) {
      const problem = await settle(node, t.txn, options.deliverTimeoutMs)
      if (problem) return problem
    }
    return null
  } finally {
    await node.flushView()
    node.close()
  }
}

/** Waits until every participant acknowledged `txn`'s decision; a reason if that fails. */
async function settle(
  node: CoordinatorNode,
  txn: string,
  deliverTimeoutMs: number,
): Promise<string | null> {
  const timeout = Bun.sleep(deliverTimeoutMs).then(() => null)
  const done: CoordinatorTxn | null = await Promise.race([node.when(txn, 'done'), timeout])
  const t = done ?? node.txns.get(txn)!
  if (done === null) {
    const missing = t.participants.filter((p) => !t.acks.includes(p))
    return (
      `${txn}=${t.decision} is recorded but ${missing.join(', ')} did not acknowledge it within ` +
      `${deliverTimeoutMs} ms; run the coordinator again to deliver it`
    )
  }
  const refused = Object.entries(t.refusals)
  if (refused.length > 0) {
    const [who, error] = refused[0]!
    return `${txn}=${t.decision} was refused by ${who}: ${error}`
  }
  return null
}
