// The chaos run's report: assembled from the run's parts, and printed as `bun run chaos` does.
import type { ClientOutcome, Report } from './types.ts'

export type ReportInput = Omit<Report, 'ok' | 'transfers' | 'timings' | 'totalMs'> & {
  ok: boolean
  outcomes: readonly ClientOutcome[]
  timings: Report['timings']
  started: number
}

/** The report of a finished run: outcomes counted, timings rounded to whole milliseconds; the
 * keys in the order `--json` has always printed them. */
export function buildReport(input: ReportInput): Report {
  const { outcomes } = input
  const count = (how: ClientOutcome['how']) => outcomes.filter((o) => o.how === how).length
  return {
    ok: input.ok && input.errors.length === 0,
    seed: input.seed,
    seconds: input.seconds,
    accounts: input.accounts,
    concurrency: input.concurrency,
    secure: input.secure,
    transfers: {
      total: outcomes.length,
      committed: outcomes.filter((o) => o.decision === 'commit').length,
      aborted: outcomes.filter((o) => o.decision === 'abort').length,
      retried: count('retried'),
      unrecorded: count('unrecorded'),
      lost: count('lost'),
    },
    kills: input.kills,
    stalls: input.stalls,
    skipped: input.skipped,
    schedule: input.schedule,
    invariants: input.invariants,
    nodeErrors: input.nodeErrors,
    errors: input.errors,
    timings: Object.fromEntries(
      Object.entries(input.timings).map(([k, v]) => [k, Math.round(v)]),
    ) as Report['timings'],
    totalMs: Math.round(performance.now() - input.started),
    dir: input.dir,
    processes: input.processes,
    shared: input.shared,
  }
}

/** One progress line: transfers so far and faults done. */
export function progress(
  at: string,
  outcomes: readonly ClientOutcome[],
  kills: Record<string, number>,
  stalls: Record<string, number>,
): string {
  const committed = outcomes.filter((o) => o.decision === 'commit').length
  const k = Object.values(kills).reduce((a, b) => a + b, 0)
  const s = Object.values(stalls).reduce((a, b) => a + b, 0)
  return `${at}: ${outcomes.length} transfers (${committed} committed), ${k} kills, ${s} stalls`
}

/** Coordinators on one log: the takeovers and fencings seen. */
function sharedLines({ shared }: Report): string[] {
  if (!shared) return []
  return [
    `shared log: ${shared.takeovers} takeovers, ${shared.fencings} fencings ` +
      '(coordinators that woke after their takeover, stopped, were restarted)',
  ]
}

/** The report as the lines `bun run chaos` prints. */
export function formatReport(report: Report): string[] {
  const t = report.transfers
  const per = (counts: Record<string, number>) =>
    Object.entries(counts)
      .map(([name, n]) => `${name} ${n}`)
      .join(', ')
  const sum = (counts: Record<string, number>) => Object.values(counts).reduce((a, b) => a + b, 0)
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`
  const lines = [
    `faults: ${sum(report.kills)} kills (${per(report.kills)})`,
    `        ${sum(report.stalls)} stalls (${per(report.stalls)})`,
    `transfers: ${t.total}: ${t.committed} committed, ${t.aborted} aborted` +
      (t.lost > 0 ? `, ${t.lost} LOST (no outcome)` : ''),
    report.shared
      ? `  ${t.retried} retried with the same id at another coordinator after theirs failed`
      : `  ${t.retried} retried with the same id after the coordinator went down, ` +
        `${t.unrecorded} aborted as it never recorded them`,
    ...sharedLines(report),
    `times: start ${s(report.timings.startMs)}, faults ${s(report.timings.faultMs)}, ` +
      `drain ${s(report.timings.drainMs)}, quiet after ${s(report.timings.settleMs)}, ` +
      `checks ${s(report.timings.checkMs)}`,
  ]
  if (report.invariants.length > 0) lines.push('invariants:')
  for (const inv of report.invariants) {
    lines.push(`  ${inv.ok ? 'ok  ' : 'FAIL'}  ${inv.name}: ${inv.summary}`)
    for (const d of inv.details.slice(0, 10)) lines.push(`          ${d}`)
    if (inv.details.length > 10) lines.push(`          ... ${inv.details.length - 10} more`)
  }
  if (report.nodeErrors.count > 0) {
    lines.push(`nodes logged ${report.nodeErrors.count} error lines, first:`)
    for (const l of report.nodeErrors.first) lines.push(`  ${l}`)
  }
  for (const e of report.errors) lines.push(`error: ${e}`)
  if (report.dir) lines.push(`kept ${report.dir} (node directories and logs/)`)
  const failed = report.invariants.filter((i) => !i.ok).map((i) => i.name)
  lines.push(
    report.ok
      ? `PASS: every invariant held (seed ${report.seed}, ${s(report.totalMs)})`
      : `FAIL: ${failed.length > 0 ? failed.join('; ') : 'the run did not complete'} ` +
          `(seed ${report.seed}, ${s(report.totalMs)})`,
  )
  return lines
}
