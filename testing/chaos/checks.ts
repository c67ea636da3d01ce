// The invariants, each its own check over what the nodes said once the run was quiet (see
// observe.ts); each returns an Invariant whose details are what broke it. Coordinators on a
// shared log are checked against the log itself too (see log-checks.ts).
import type { Bank } from '../bank.ts'
import type { LogDb } from './log-db.ts'
import {
  checkClientsWithLog,
  checkCoordinatorsAgree,
  checkDecisionFiles,
  checkLeases,
  checkOneDecision,
  readLog,
  type LogFacts,
} from './log-checks.ts'
import { observe, type Observed } from './observe.ts'
import type { ChaosNode, ClientOutcome, Invariant } from './types.ts'
import { getJson } from './util.ts'

export type CheckInput = {
  bank: Bank
  accounts: number
  initial: number
  outcomes: readonly ClientOutcome[]
  coordinators: readonly ChaosNode[]
  participantNodes: readonly ChaosNode[]
  /** Why the cluster did not become quiet, if it did not. */
  settled: string[]
  /** The shared log's database, with coordinators on one log. */
  logDb: LogDb | null
}

/** Checks every invariant from the nodes' own APIs and files, in the report's order; on a
 * shared log, also returns what the log showed. */
export async function check(
  input: CheckInput,
): Promise<{ invariants: Invariant[]; log?: LogFacts }> {
  const seen = await observe({ ...input, shared: input.logDb !== null })
  if (input.logDb) {
    const log = await readLog(input.logDb, input.coordinators)
    return { invariants: await checkShared(input, seen, log), log }
  }
  const invariants = [
    ...checkMoney(input, seen),
    checkClients(input, seen),
    checkParticipants(input, seen),
    checkDecisionFile(seen),
    await checkStateFiles(input, seen),
    await checkQuiet(input, seen),
  ]
  return { invariants }
}

/** The invariants of coordinators on one log: the log stands where the single coordinator
 * stood, and every coordinator must answer as it does. */
async function checkShared(input: CheckInput, seen: Observed, log: LogFacts) {
  return [
    ...checkMoney(input, seen),
    checkClientsWithLog(input.outcomes, log, seen),
    checkParticipants(input, seen, 'participants agree with the log'),
    checkCoordinatorsAgree(input.coordinators, seen),
    checkDecisionFiles(input.coordinators, log, seen),
    await checkStateFiles(input, seen),
    await checkQuiet(input, seen),
    checkOneDecision(log),
    checkLeases(log),
  ]
}

const invariant = (name: string, details: string[], summary: string): Invariant => ({
  name,
  ok: details.length === 0,
  summary,
  details,
})

/** 1. Money: conserved, never negative, and each balance what the committed transfers make it. */
function checkMoney(input: CheckInput, { balances, byId }: Observed): Invariant[] {
  const total = balances.reduce((a, b) => a + b, 0)
  const expectedTotal = input.accounts * input.initial
  const negative = balances.flatMap((b, i) => (b < 0 ? [`account ${i}: ${b}`] : []))
  const expected = new Array<number>(input.accounts).fill(input.initial)
  for (const o of input.outcomes) {
    if (byId.get(o.id)!.c.state !== 'commit') continue
    expected[o.from]! -= o.amount
    expected[o.to]! += o.amount
  }
  const wrongBalances = balances.flatMap((b, i) =>
    b === expected[i] ? [] : [`account ${i}: ${b}, the committed transfers make it ${expected[i]}`],
  )
  return [
    invariant(
      'total conserved',
      total === expectedTotal ? [] : [`total ${total}, expected ${expectedTotal}`],
      `${total} = ${expectedTotal}`,
    ),
    invariant(
      'no negative balance',
      negative,
      `${balances.length} accounts, lowest ${Math.min(...balances)}`,
    ),
    invariant(
      'balances match the committed transfers',
      wrongBalances,
      `${input.accounts} accounts, from the ${input.logDb ? "log's" : "coordinator's"} commits`,
    ),
  ]
}

/** 2. What each client was told is what the coordinator recorded; an id it never recorded is
 * unknown there (presumed abort) and unknown or aborted on every participant. */
function checkClients({ outcomes }: CheckInput, { byId }: Observed): Invariant {
  const mismatches: string[] = []
  for (const o of outcomes) {
    const { c, p } = byId.get(o.id)!
    if (o.how === 'lost') mismatches.push(`${o.id}: no outcome after retrying (${o.error})`)
    else if (o.how === 'unrecorded') {
      // `aborted` is allowed: a participant that prepared asked, and unknown means abort.
      const heard = p.flatMap((v, i) =>
        v.state === 'unknown' || v.state === 'aborted' ? [] : [`p${i} ${v.state}`],
      )
      if (c.state !== 'unknown' || heard.length > 0) {
        mismatches.push(
          `${o.id}: unknown when the client asked, now ${c.state} at the coordinator` +
            (heard.length > 0 ? `, ${heard.join(', ')}` : ''),
        )
      }
    } else if (c.state !== o.decision || c.phase !== 'done') {
      mismatches.push(`${o.id}: client told ${o.decision}, coordinator ${JSON.stringify(c)}`)
    }
  }
  return invariant(
    "clients' outcomes are the coordinator's",
    mismatches,
    `${outcomes.length} transfers`,
  )
}

/** 3. Every transaction the coordinator decided has that outcome on every participant it
 * involved, and is unknown on the others; one it never recorded is unknown everywhere. Presumed
 * abort allows `unknown` for an abort too, where a participant never voted (the abort is sent
 * once), and `aborted` for a transaction the coordinator lost before its lazy begin record was
 * written (the participant asked, and unknown means abort). */
function checkParticipants(
  { participantNodes }: CheckInput,
  { views }: Observed,
  name = 'participants agree with the coordinator',
): Invariant {
  const mismatches: string[] = []
  let decided = 0
  for (const { id, c, p } of views) {
    const involved = new Set(Object.keys(c.votes ?? {}))
    if (c.state === 'commit' || c.state === 'abort') decided += 1
    p.forEach((v, i) => {
      const url = participantNodes[i]!.url
      let want: string
      if (c.state === 'commit' || c.state === 'abort') {
        want = !involved.has(url) ? 'unknown' : c.state === 'commit' ? 'committed' : 'aborted'
      } else if (c.state === 'unknown') want = 'unknown'
      else want = `(an outcome, the coordinator still says ${c.state})`
      const presumed =
        (want === 'aborted' && v.state === 'unknown' && c.votes?.[url] === null) ||
        (c.state === 'unknown' && v.state === 'aborted')
      if ((v.state !== want && !presumed) || v.heuristic) {
        mismatches.push(
          `${id}: coordinator ${c.state} (involves ${[...involved].join(' ') || 'none'}), ` +
            `participant${i} ${url} is ${v.state}${v.heuristic ? ' (heuristic)' : ''}`,
        )
      }
    })
  }
  return invariant(
    name,
    mismatches,
    `${decided} decided, ${views.length} ids on ${participantNodes.length} participants`,
  )
}

/** 4. decision.txt: one line per decided transaction, agreeing with GET /transactions/:id. */
function checkDecisionFile({ decisionFile, decidedCount, byId, views }: Observed): Invariant {
  const problems = [...decisionFile.problems]
  if (decisionFile.lines.length !== decidedCount) {
    problems.push(
      `${decisionFile.lines.length} lines, the coordinator counts ${decidedCount} decided`,
    )
  }
  const inDecisionFile = new Set(decisionFile.lines.map((l) => l.id))
  for (const l of decisionFile.lines) {
    const state = byId.get(l.id)!.c.state
    if (state !== l.value) problems.push(`${l.id}=${l.value}, GET says ${state}`)
  }
  for (const { id, c } of views) {
    if ((c.state === 'commit' || c.state === 'abort') && !inDecisionFile.has(id)) {
      problems.push(`${id} (${c.state}) is missing`)
    }
  }
  return invariant('decision.txt agrees with the coordinator', problems, `${decidedCount} lines`)
}

/** 5. Each state.txt: sorted, one line per decided transaction, agreeing with the participant. */
async function checkStateFiles(
  { bank, participantNodes }: CheckInput,
  seen: Observed,
): Promise<Invariant> {
  const problems: string[] = []
  const summary: string[] = []
  await Promise.all(
    participantNodes.map(async (n, i) => {
      const s = (await getJson(bank, `${n.url}/status`)) as { counts: Record<string, number> }
      summary[i] = `${seen.stateFiles[i]!.lines.length}`
      for (const p of stateFileProblems(i, s.counts, seen)) problems.push(`participant${i}: ${p}`)
    }),
  )
  return invariant(
    'state.txt agrees with each participant',
    problems,
    `${summary.join(', ')} lines`,
  )
}

/** What is wrong with participant `i`'s state.txt, given its /status counts. */
function stateFileProblems(i: number, counts: Record<string, number>, seen: Observed): string[] {
  const file = seen.stateFiles[i]!
  const problems = [...file.problems]
  const count = (counts.committed ?? 0) + (counts.aborted ?? 0)
  if (file.lines.length !== count)
    problems.push(`${file.lines.length} lines, its /status counts ${count}`)
  const sorted = file.lines.map((l) => l.id)
  if (sorted.some((id, k) => k > 0 && sorted[k - 1]! >= id)) {
    problems.push('lines are not in plain string order')
  }
  const listed = new Set(sorted)
  for (const l of file.lines) {
    const state = seen.byId.get(l.id)!.p[i]!.state
    if (state !== l.value) problems.push(`${l.id}=${l.value}, GET ${state}`)
  }
  for (const { id, p } of seen.views) {
    const state = p[i]!.state
    if ((state === 'committed' || state === 'aborted') && !listed.has(id)) {
      problems.push(`${id} (${state}) is missing`)
    }
  }
  return problems
}

/** 6. Nothing in flight: the cluster became quiet, and nothing is prepared, locked, in doubt or
 * resolved by hand; no coordinator preparing or delivering. */
async function checkQuiet(input: CheckInput, { statuses }: Observed): Promise<Invariant> {
  const leftovers = [...input.settled]
  statuses.forEach((status, i) => {
    if ((status.counts.preparing ?? 0) > 0 || (status.counts.delivering ?? 0) > 0) {
      leftovers.push(`${input.coordinators[i]!.name}: ${JSON.stringify(status.counts)}`)
    }
  })
  for (const [i, n] of input.participantNodes.entries()) {
    const s = (await getJson(input.bank, `${n.url}/status`)) as {
      prepared: string[]
      locks: Record<string, string>
      inDoubt: unknown[]
      heuristic: unknown[]
    }
    const locks = Object.keys(s.locks)
    if (s.prepared.length + locks.length + s.inDoubt.length + s.heuristic.length > 0) {
      leftovers.push(
        `participant${i}: prepared ${s.prepared.join(' ') || 'none'}, locks ` +
          `${locks.join(' ') || 'none'}, ${s.inDoubt.length} in doubt, ` +
          `${s.heuristic.length} heuristic`,
      )
    }
  }
  return invariant(
    'nothing prepared or locked',
    leftovers,
    'coordinator idle, participants hold nothing',
  )
}
