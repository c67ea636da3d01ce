// How a prepared participant in doubt learns the outcome: first from the coordinator, then, if
// the coordinator cannot be reached, from its peers (cooperative termination).
import { outcomeFromCoordinator, outcomeFromPeers, type Decision } from '../core/index.ts'

export type AskOptions = { coordinator: string | null; peers: readonly string[]; requestMs: number }

/** The outcome of `txn` if anyone asked knows it, or null (keep waiting, keep asking). */
export async function askOutcome(txn: string, options: AskOptions): Promise<Decision | null> {
  if (options.coordinator !== null) {
    const answer = await getJson(`${options.coordinator}/transactions/${txn}`, options.requestMs)
    // A coordinator still deciding will tell us; an answer we do not understand (another
    // service on that address) is no answer: ask the peers.
    if (answer?.state === 'preparing') return null
    const outcome = outcomeFromCoordinator(answer?.state)
    if (outcome !== null) return outcome
  }
  const answers = await Promise.all(
    options.peers.map((peer) => requestDecision(peer, txn, options)),
  )
  return outcomeFromPeers(answers)
}

/** Asks a peer what it knows. A peer that never voted aborts before it answers, so that it can
 * never vote yes afterwards: a plain read could not promise that. */
async function requestDecision(peer: string, txn: string, options: AskOptions): Promise<unknown> {
  try {
    const response = await fetch(`${peer}/decision-request`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ txn }),
      signal: AbortSignal.timeout(options.requestMs),
    })
    const body = (await response.json()) as { state?: unknown }
    return response.ok ? body.state : null
  } catch {
    return null
  }
}

async function getJson(url: string, requestMs: number): Promise<Record<string, unknown> | null> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(requestMs) })
    if (!response.ok && response.status !== 404) return null
    return (await response.json()) as Record<string, unknown>
  } catch {
    return null
  }
}
