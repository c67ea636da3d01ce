// What the nodes say once the run is quiet, read for the checks: the coordinator's status and
// decision.txt, each participant's state.txt, every transaction as each node reports it, and the
// balances.
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
export type View = { id: string; c: CoordinatorView; p: ParticipantView[] }

export type Line = { id: string; value: string }
export type LinesFile = { lines: Line[]; problems: string[] }

export type Observed = {
  status: { counts: Record<string, number> }
  /** Transactions the coordinator counts as decided. */
  decidedCount: number
  decisionFile: LinesFile
  stateFiles: LinesFile[]
  views: View[]
  byId: Map<string, View>
  balances: number[]
}

export type ObserveInput = {
  bank: Bank
  accounts: number
  outcomes: readonly ClientOutcome[]
  coordinator: ChaosNode
  participantNodes: readonly ChaosNode[]
}

export async function observe(input: ObserveInput): Promise<Observed> {
  const { bank, coordinator, participantNodes } = input
  const status = (await getJson(bank, `${coordinator.url}/status`)) as Observed['status']
  const decidedCount = (status.counts.commit ?? 0) + (status.counts.abort ?? 0)
  const decisionFile = await readDecisionFile(coordinator, decidedCount)
  const stateFiles = await Promise.all(participantNodes.map((n) => readStateFile(bank, n)))

  // Every transaction anyone mentions: the clients' transfers, decision.txt, every state.txt.
  const ids = new Set<string>(input.outcomes.map((o) => o.id))
  for (const l of decisionFile.lines) ids.add(l.id)
  for (const f of stateFiles) for (const l of f.lines) ids.add(l.id)
  const views = await mapLimit([...ids], 24, (id) =>
    viewOf(bank, id, coordinator, participantNodes),
  )
  const byId = new Map(views.map((v) => [v.id, v]))
  const balances = await readBalances(input.bank, input.accounts)
  return { status, decidedCount, decisionFile, stateFiles, views, byId, balances }
}

/** decision.txt. The coordinator rewrites it in the background after logging a decision (its
 * log is the truth, the file a view), so give the last write a moment. */
async function readDecisionFile(coordinator: ChaosNode, decidedCount: number) {
  const read = () =>
    parseLines(readText(join(coordinator.dir, 'decision.txt')), ['commit', 'abort'])
  let file = read()
  for (let n = 0; n < 30 && file.lines.length < decidedCount; n++) {
    await Bun.sleep(100)
    file = read()
  }
  return file
}

/** A participant's state.txt, once it lists as many outcomes as the participant counts: it too
 * is rewritten in the background, a moment after the log. */
async function readStateFile(bank: Bank, node: ChaosNode) {
  const read = () => parseLines(readText(join(node.dir, 'state.txt')), ['committed', 'aborted'])
  const decided = async () => {
    const { counts } = (await getJson(bank, `${node.url}/status`)) as {
      counts: Record<string, number>
    }
    return (counts.committed ?? 0) + (counts.aborted ?? 0)
  }
  let file = read()
  for (let n = 0; n < 30 && file.lines.length !== (await decided()); n++) {
    await Bun.sleep(100)
    file = read()
  }
  return file
}

/** `id` as the coordinator and every participant report it. */
async function viewOf(
  bank: Bank,
  id: string,
  coordinator: ChaosNode,
  participantNodes: readonly ChaosNode[],
): Promise<View> {
  const c = (await getJson(bank, `${coordinator.url}/transactions/${id}`)) as CoordinatorView
  const p = await Promise.all(
    participantNodes.map(
      async (n) => (await getJson(bank, `${n.url}/transactions/${id}`)) as ParticipantView,
    ),
  )
  return { id, c, p }
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
