// The invariants of coordinators on one log in PostgreSQL, checked in the log's own tables once
// the run is quiet: one decision per transaction, every client told the log's outcome, no lease
// overlap (nothing written by a coordinator's epoch once it was taken over), every coordinator
// answering the log's outcome and each decision.txt agreeing with it. Only this run's rows
// count: those of its coordinators since it began (a log given by URL may hold others).
import type { LogDb } from './log-db.ts'
import type { Observed } from './observe.ts'
import type { ChaosNode, ClientOutcome, Invariant } from './types.ts'

export type LogFacts = {
  /** Each transaction's distinct decisions in twophase_coordinator_log. */
  decisions: Map<string, string[]>
  /** Records written by a coordinator's epoch at or after its takeover. */
  overlaps: string[]
  /** Takeovers by this run's coordinators. */
  takeovers: number
}

/** Reads what the checks need from the log's tables. */
export async function readLog(db: LogDb, coordinators: readonly ChaosNode[]): Promise<LogFacts> {
  const names = coordinators.map((c) => c.url)
  const since = db.since.toISOString()
  const rows = await db.query(
    `SELECT txn, array_agg(DISTINCT record->>'decision' ORDER BY record->>'decision') AS d
     FROM twophase_coordinator_log WHERE record->>'type' = 'decision' AND txn IN (
       SELECT txn FROM twophase_coordinator_log WHERE writer = ANY($1::text[]) AND at >= $2)
     GROUP BY txn`,
    [names, since],
  )
  const decisions = new Map<string, string[]>(rows.map((r) => [r.txn, arrayOf(r.d)]))
  const late = await db.query(
    `SELECT l.txn, l.writer, l.epoch, l.record->>'type' AS type, l.at, t.at AS taken_at,
       t.taken_by
     FROM twophase_coordinator_log l JOIN twophase_takeovers t
       ON l.writer = t.name AND l.epoch = t.epoch AND l.at >= t.at
     WHERE t.at >= $1 ORDER BY l.seq LIMIT 100`,
    [since],
  )
  const overlaps = late.map(
    (r) =>
      `${r.txn}: ${r.type} by ${r.writer} epoch ${r.epoch} at ${iso(r.at)}, ` +
      `taken over by ${r.taken_by} at ${iso(r.taken_at)}`,
  )
  const [taken] = await db.query(
    `SELECT count(*)::int AS n FROM twophase_takeovers WHERE at >= $1 AND taken_by = ANY($2)`,
    [since, names],
  )
  return { decisions, overlaps, takeovers: taken.n }
}

const iso = (at: unknown) => new Date(at as string).toISOString()

/** A text[] as Bun's SQL returns it: an array, or PostgreSQL's `{a,b}` text. */
function arrayOf(value: unknown): string[] {
  if (Array.isArray(value)) return value as string[]
  return String(value)
    .replace(/^\{|\}$/g, '')
    .split(',')
}

const invariant = (name: string, details: string[], summary: string): Invariant => ({
  name,
  ok: details.length === 0,
  summary,
  details,
})

/** No transaction has two different decisions in the log. */
export function checkOneDecision({ decisions }: LogFacts): Invariant {
  const twice = [...decisions].flatMap(([txn, d]) => (d.length > 1 ? [`${txn}: ${d}`] : []))
  return invariant(
    'one decision per transaction in the log',
    twice,
    `${decisions.size} transactions decided`,
  )
}

/** What each client was told is the log's decision: a commit is in the log, an abort is in
 * it or presumed (no decision row, the claim alone or nothing), and the coordinators answer it. */
export function checkClientsWithLog(
  outcomes: readonly ClientOutcome[],
  { decisions }: LogFacts,
  { byId }: Observed,
): Invariant {
  const mismatches: string[] = []
  let presumed = 0
  for (const o of outcomes) {
    if (o.how === 'lost') {
      mismatches.push(`${o.id}: no outcome after retrying (${o.error})`)
      continue
    }
    const logged = decisions.get(o.id)
    const answered = byId.get(o.id)!.c.state
    if (logged === undefined && o.decision === 'abort') presumed += 1
    const inLog = logged === undefined ? 'abort' : logged.join('+')
    const fromLog = answered === 'unknown' && logged === undefined ? 'abort' : answered
    if (inLog !== o.decision || fromLog !== o.decision) {
      mismatches.push(
        `${o.id}: client told ${o.decision}, the log has ${logged ?? 'no decision'}, ` +
          `the coordinator answers ${answered}`,
      )
    }
  }
  return invariant(
    "clients' outcomes are the log's",
    mismatches,
    `${outcomes.length} transfers, ${presumed} aborts presumed (no decision in the log)`,
  )
}

/** No record in the log from a coordinator's epoch at or after that epoch was taken over. */
export function checkLeases({ overlaps, takeovers }: LogFacts): Invariant {
  return invariant(
    'no lease overlap in the log',
    overlaps,
    `${takeovers} takeovers, nothing written by a coordinator after its own`,
  )
}

/** Every coordinator answers each transaction as the first one does (from the log). */
export function checkCoordinatorsAgree(coordinators: readonly ChaosNode[], seen: Observed) {
  const mismatches: string[] = []
  for (const { id, c, others } of seen.views) {
    others.forEach((o, i) => {
      if (o.state !== c.state || o.decision !== c.decision) {
        const name = coordinators[i + 1]!.name
        mismatches.push(`${id}: ${coordinators[0]!.name} ${c.state}, ${name} ${o.state}`)
      }
    })
  }
  return invariant(
    'every coordinator answers the same',
    mismatches,
    `${seen.views.length} ids on ${coordinators.length} coordinators`,
  )
}

/** Each coordinator's decision.txt shows only the decisions it made or recovered since its
 * last start: each line the log's decision, no id twice. */
export function checkDecisionFiles(
  coordinators: readonly ChaosNode[],
  { decisions }: LogFacts,
  { decisionFiles }: Observed,
): Invariant {
  const problems: string[] = []
  decisionFiles.forEach((file, i) => {
    const name = coordinators[i]!.name
    for (const p of file.problems) problems.push(`${name}: ${p}`)
    for (const l of file.lines) {
      const logged = decisions.get(l.id)
      if (logged?.length !== 1 || logged[0] !== l.value) {
        problems.push(`${name}: ${l.id}=${l.value}, the log has ${logged ?? 'no decision'}`)
      }
    }
  })
  const counts = decisionFiles.map((f) => f.lines.length).join(', ')
  return invariant('each decision.txt agrees with the log', problems, `${counts} lines`)
}
