// What the nodes say once the run is quiet, read for the checks: the coordinator's status and
// decision.txt (each coordinator's, with several), each participant's state.txt, every
// transaction as each node reports it, and the balances.
import { join } from 'node:path'
import { readBalances, type Bank } from '../bank.ts'
import type { ChaosNode, ClientOutcome } from './types.ts'
import { getJson, mapLimit, readText } from './util.ts'

export type CoordinatorView = {
  state: string
  phase?: string
  decision?: string | null
  votes?: Record<string, unknown>
}
export type ParticipantView = { state: string; heuristic?: boolean }
/** `c` is the first coordinator's answer (on a shared log: the log's, as it reads it), `others`
 * the other coordinators'. */
export type View = {
  id: string
  c: CoordinatorView
  others: CoordinatorView[]
  p: ParticipantView[]
}

export type Line = { id: string; value: string }
export type LinesFile = { lines: Line[]; problems: string[] }

type Status = { counts: Record<string, number> }

export type Observed = {
  /** The first coordinator's. */
  status: Status
  /** Every coordinator's, in order. */
  statuses: Status[]
  /** Transactions the first coordinator counts as decided. */
  decidedCount: number
  decisionFile: LinesFile
  /** Every coordinator's decision.txt, in order (the first is `decisionFile`). */
  decisionFiles: LinesFile[]
  stateFiles: LinesFile[]
  views: View[]
  byId: Map<string, View>
  balances: number[]
}

export type ObserveInput = {
  bank: Bank
  accounts: number
  outcomes: readonly ClientOutcome[]
  coordinators: readonly ChaosNode[]
  participantNodes: readonly ChaosNode[]
  /** Coordinators on a shared log: each decision.txt shows only its own decisions. */
  shared: boolean
}

export async function observe(input: ObserveInput): Promise<Observed> {
  const { bank, coordinators, participantNodes } = input
  const statuses = (await Promise.all(
    coordinators.map((c) => getJson(bank, `${c.url}/status`)),
  )) as Status[]
  const status = statuses[0]!
  const decidedCount = (status.counts.commit ?? 0) + (status.counts.abort ?? 0)
  // On a shared log a coordinator's decided count is no guide to its file: read it as it is.
  const decisionFiles = await Promise.all(
    coordinators.map((c) => readDecisionFile(c, input.shared ? 0 : decidedCount)),
  )
  const stateFiles = await Promise.all(participantNodes.map((n) => readStateFile(bank, n)))

  // Every transaction anyone mentions: the clients' transfers, decision.txt, every state.txt.
  const ids = new Set<string>(input.outcomes.map((o) => o.id))
  for (const f of [...decisionFiles, ...stateFiles]) for (const l of f.lines) ids.add(l.id)
  const views = await mapLimit([...ids], 24, (id) =>
    viewOf(bank, id, coordinators, participantNodes),
  )
  const byId = new Map(views.map((v) => [v.id, v]))
  const balances = await readBalances(input.bank, input.accounts)
  const decisionFile = decisionFiles[0]!
  return {
    ...{ status, statuses, decidedCount, decisionFile, decisionFiles, stateFiles },
    ...{ views, byId, balances },
  }
}

/** How many times (every 100 ms) a view is read again until it shows what its node counts. */
const VIEW_POLLS = 200

/** decision.txt. The coordinator rewrites it in the background after logging a decision (its
 * log is the truth, the file a view), so give the last write a moment. */
async function readDecisionFile(coordinator: ChaosNode, decidedCount: number) {
  const read = () =>
    parseLines(readText(join(coordinator.dir, 'decision.txt')), ['commit', 'abort'])
  let file = read()
  for (let n = 0; n < VIEW_POLLS && file.lines.length < decidedCount; n++) {
    await Bun.sleep(100)
    file = read()
  }
  return file
}

/** A participant's state.txt, once it lists as many outcomes as the participant counts: it too
 * is rewritten in the background, a moment after the log (100 times what its last rewrite
 * took later, between 100 ms and 10 s). */
async function readStateFile(bank: Bank, node: ChaosNode) {
  const read = () => parseLines(readText(join(node.dir, 'state.txt')), ['committed', 'aborted'])
  const decided = async () => {
    const { counts } = (await getJson(bank, `${node.url}/status`)) as {
      counts: Record<string, number>
    }
    return (counts.committed ?? 0) + (counts.aborted ?? 0)
  }
  let file = read()
  for (let n = 0; n < VIEW_POLLS && file.lines.length !== (await decided()); n++) {
    await Bun.sleep(100)
    file = read()
  }
  return file
}

/** `id` as every coordinator and every participant report it. */
async function viewOf(
  bank: Bank,
  id: string,
  coordinators: readonly ChaosNode[],
  participantNodes: readonly ChaosNode[],
): Promise<View> {
  const get = (n: ChaosNode) => getJson(bank, `${n.url}/transactions/${id}`)
  const [c, ...others] = (await Promise.all(coordinators.map(get))) as CoordinatorView[]
  const p = (await Promise.all(participantNodes.map(get))) as ParticipantView[]
  return { id, c: c!, others, p }
}

/** `id=value` lines; problems for malformed and repeated ones. */
function parseLines(text: string, values: string[]): LinesFile {
  const lines: Line[] = []
  const problems: string[] = []
  const seen = new Set<string>()
  text.split('\n').forEach((raw, n) => {
    if (raw === '') return
    const match = /^([^=]+)=(.*)$/.exec(raw)
    if (!match || !values.includes(match[2]!)) {
      problems.push(`line ${n + 1} is malformed: ${JSON.stringify(raw)}`)
      return
    }
    if (seen.has(match[1]!)) problems.push(`line ${n + 1} repeats ${match[1]}`)
    seen.add(match[1]!)
    lines.push({ id: match[1]!, value: match[2]! })
  })
  return { lines, problems }
}
