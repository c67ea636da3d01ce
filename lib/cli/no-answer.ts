// When POST /transactions gives no outcome within the client's --timeout: one line that says
// what the coordinator is waiting for, from what it answers now (the transaction, its /status).
import { call, type Target } from './http.ts'
import { isTxnId } from '../core/index.ts'

/** How long each of the follow-up questions may take: the coordinator answers them at once. */
const QUICK_MS = 2_000

async function bodyOf(target: Target, path: string): Promise<any> {
  const ms = Math.min(target.timeoutMs, QUICK_MS)
  return call(target.url, path, 'the coordinator', ms).then(
    (r) => r.body,
    () => null,
  )
}

/** Why transaction `id` has no outcome yet, as one line: it is still preparing (and which
 * participants have not voted, and which of those the coordinator cannot reach), or decided
 * but not yet answered, or the coordinator does not answer at all. */
export async function noOutcome(target: Target, id: unknown): Promise<string> {
  const known = isTxnId(id)
  const head =
    `the coordinator at ${target.url} gave no outcome${known ? ` for ${id}` : ''} ` +
    `within ${target.timeoutMs} ms (--timeout)`
  const [txn, status] = await Promise.all([
    known ? bodyOf(target, `/transactions/${id}`) : null,
    bodyOf(target, '/status'),
  ])
  if (txn === null && status === null) return `${head}, and does not answer now either`
  const listed = (status?.participants ?? []) as { url: string; reachable?: boolean }[]
  const urls = listed.map((p) => p.url)
  const down = new Set(listed.filter((p) => p.reachable === false).map((p) => p.url))
  const name = (url: string) =>
    `${urls.includes(url) ? `participant ${urls.indexOf(url)} ` : ''}${url}`
  if (txn?.state === 'preparing') {
    const votes = Object.entries((txn.votes ?? {}) as Record<string, string | null>)
    const waiting = votes
      .filter(([, vote]) => vote === null)
      .map(([url]) => `${name(url)}${down.has(url) ? ', which it cannot reach' : ''}`)
    // One participant commits in one phase: it may have committed, so it is asked until it
    // answers, with no prepare timeout.
    const why = votes.length === 1 ? ' (one participant: one phase, no prepare timeout)' : ''
    return (
      `${head}: ${id} is still preparing, waiting for ${waiting.join(' and ')}${why}; ` +
      `it is decided once they answer (see: coordinator.ts show ${id})`
    )
  }
  if (txn?.state === 'commit' || txn?.state === 'abort') {
    return `${head}: ${id} is decided (${txn.state}); see: coordinator.ts show ${id}`
  }
  const unreachable = [...down].map(name)
  return unreachable.length > 0
    ? `${head}; it cannot reach ${unreachable.join(' and ')}`
    : `${head}; see: coordinator.ts status`
}
