// Crash points for tests: `TWOPHASE_FAILPOINTS=point[@txn],...` makes the node kill itself with
// SIGKILL when it reaches `point` (for transaction `txn`, or any). A testing aid: a real crash at
// an exact protocol step, with no branch in the protocol core.

/** Every crash point, named after the protocol step it follows. */
export const FAILPOINTS = [
  'participant-after-vote-logged', // yes vote durable, reply not sent
  'participant-after-outcome-logged', // commit/abort durable, acknowledgement not sent
  'participant-after-precommit-logged', // 3PC: precommitted (or preaborted) durable, not acked
  'resource-after-outcome-logged', // a resource participant: outcome logged, resource not told
  'coordinator-after-precommit-logged', // 3PC: the precommit record durable, none sent yet
  'coordinator-after-first-precommit-ack', // 3PC: one participant precommitted, no quorum yet
  'coordinator-after-begin-logged', // the lazy begin record reached the disk (no decision yet)
  'coordinator-after-decision-logged', // decision durable; a commit not yet sent to anyone
  'coordinator-after-first-ack', // one participant acknowledged the decision, others not yet
  'pg-after-prepare', // PostgreSQL: PREPARE TRANSACTION done, the vote not yet answered
  'log-before-flush', // records queued for a group commit, not yet written (`@N`: the Nth flush)
] as const

export type Failpoint = (typeof FAILPOINTS)[number]

export function parseFailpoints(spec: string | undefined): Map<Failpoint, string | null> {
  const points = new Map<Failpoint, string | null>()
  for (const item of (spec ?? '').split(',').filter((s) => s.trim() !== '')) {
    const [name, txn] = item.trim().split('@') as [string, string | undefined]
    if (!(FAILPOINTS as readonly string[]).includes(name)) {
      throw new Error(
        `unknown failpoint "${name}" in TWOPHASE_FAILPOINTS; known: ${FAILPOINTS.join(', ')}`,
      )
    }
    points.set(name as Failpoint, txn ?? null)
  }
  return points
}

const active = parseFailpoints(process.env.TWOPHASE_FAILPOINTS)

/** Crashes the process here if the environment armed `point` (for `txn`). */
export function failpoint(point: Failpoint, txn: string): void {
  if (!active.has(point)) return
  const only = active.get(point)
  if (only !== null && only !== txn) return
  process.stderr.write(`failpoint ${point} hit for ${txn}: crashing\n`)
  process.kill(process.pid, 'SIGKILL')
}
