// Output: one JSON object with --json, else the human-readable lines of an outcome or a status.
import type { Target } from './http.ts'

/** Prints `json` or, without --json, the lines `human` makes (only then are they made). */
export function print(target: Target, json: unknown, human: () => string[]): void {
  console.log(target.json ? JSON.stringify(json) : human().join('\n'))
}

/** An outcome (POST /transactions, GET /transactions/:id) as a headline and a line per vote. */
export function outcomeLines(o: any): string[] {
  const state = o.state ?? o.decision
  // Presumed abort: an abort is sent once and never acknowledged; one who missed it asks.
  const delivery = o.heuristic
    ? 'HEURISTIC: a participant refused it, its outcome differs'
    : o.acknowledged
      ? 'acknowledged'
      : state === 'abort'
        ? 'sent once; aborts are not acknowledged'
        : 'not yet acknowledged; delivery goes on'
  const head = state === 'preparing' ? `${o.id} preparing` : `${o.id} ${state} (${delivery})`
  const votes = Object.entries((o.votes ?? {}) as Record<string, string | null>)
  const width = Math.max(0, ...votes.map(([url]) => url.length))
  const lines = [head]
  for (const [url, vote] of votes) {
    const reason = o.reasons?.[url] as string | undefined
    const refusal = o.refusals?.[url] as string | undefined
    let text = `  ${url.padEnd(width)}  ${vote ?? '(no vote)'}`
    if (reason) text += `: ${reason}`
    if (refusal) text += ` (refused the decision: ${refusal})`
    lines.push(text)
  }
  if (o.protocol === '3pc') lines.push(...threePhaseLines(o, votes.length))
  return lines
}

/** Three-phase commit's phases: the votes, the precommits (a quorum decides), the decision. */
function threePhaseLines(o: any, n: number): string[] {
  const votes = Object.values((o.votes ?? {}) as Record<string, string | null>)
  const yes = votes.filter((v) => v === 'yes').length
  const pre = ((o.precommitted ?? []) as string[]).length
  const state = o.state ?? o.decision
  const done = o.acknowledged ? 'acknowledged' : 'being delivered'
  return [
    `  CAN-COMMIT  ${yes} of ${n} voted yes`,
    `  PRE-COMMIT  ${pre} of ${n} precommitted (a quorum is ${Math.floor(n / 2) + 1})`,
    `  DO-COMMIT   ${state === 'commit' || state === 'abort' ? `${state}, ${done}` : 'not yet'}`,
  ]
}

/** The coordinator's counts and deliveries, then each participant's block. */
export function statusLines(url: string, c: any, participants: any[]): string[] {
  const n = c.counts ?? {}
  const pre = n.precommitting ? ` (${n.precommitting} precommitting)` : ''
  const lines = [
    `coordinator ${url}: ${n.commit ?? 0} commit, ${n.abort ?? 0} abort, ` +
      `${n.preparing ?? 0} preparing${pre}, ${n.delivering ?? 0} delivering`,
  ]
  for (const d of c.delivering ?? []) {
    lines.push(`  delivering ${d.id} (${d.decision}) to ${d.waitingFor.join(', ')}`)
  }
  participants.forEach((p, i) => lines.push(...participantLines(i, p)))
  return lines
}

/** Participant `i`: unreachable, or its counts and what it holds (prepared, locks, in doubt). */
function participantLines(i: number, p: any): string[] {
  if (!p.reachable) return [`participant ${i} ${p.url}: unreachable`]
  const s = p.status
  const k = s.counts ?? {}
  const lines = [
    `participant ${i} ${p.url}: ${k.committed ?? 0} committed, ${k.aborted ?? 0} aborted, ` +
      `${k.prepared ?? 0} prepared` +
      (k.precommitted ? `, ${k.precommitted} precommitted` : '') +
      (k.preaborted ? `, ${k.preaborted} preaborted` : ''),
  ]
  lines.push(`  prepared: ${listOf(s.prepared ?? [])}`)
  const inDoubt = (s.inDoubt ?? []).map(
    (d: any) => `${d.txn} (waited ${d.waitedMs} ms, asked ${d.asks} times)`,
  )
  lines.push(`  in doubt: ${listOf(inDoubt)}`)
  const locks = Object.entries(s.locks ?? {}).map(([key, txn]) => `${key} (${txn})`)
  lines.push(`  locks: ${listOf(locks)}`)
  const heuristic = (s.heuristic ?? []).map((h: any) => `${h.txn}=${h.state}`)
  if (heuristic.length > 0) lines.push(`  heuristic: ${listOf(heuristic)}`)
  return lines
}

function listOf(items: readonly string[]): string {
  return items.length === 0 ? 'none' : items.join(', ')
}
