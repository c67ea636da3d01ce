// Routing: which participant an `--on P` names (an index, a name given to the service, or a URL)
// and the `ops` of POST /transactions that sends each operation of a `start` line where its
// `--on` flags say.
import { UsageError } from './args.ts'
import type { StartLine } from './start-line.ts'
import type { Op } from '../core/index.ts'

/** A participant named by `--on`: an index, a name given to the service, or a URL. */
type Participant = { index: number } | { name: string } | { url: string }

function participantOf(value: string): Participant {
  if (/^\d+$/.test(value)) return { index: Number(value) }
  if (/^[A-Za-z][A-Za-z0-9_-]*$/.test(value)) return { name: value }
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`
  try {
    const url = new URL(withScheme)
    if ((url.protocol === 'http:' || url.protocol === 'https:') && url.port !== '') {
      return { url: `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, '')}` }
    }
  } catch {}
  throw new UsageError(`invalid --on ${JSON.stringify(value)}: expected an index, a name or a URL`)
}

/** Whether `--on value` names a participant by the name the service gave it. */
export function isName(value: string): boolean {
  return 'name' in participantOf(value)
}

/** How POST /transactions keys a per-participant list: the service resolves each form. */
function keyOf(p: Participant): string {
  return 'index' in p ? String(p.index) : 'name' in p ? p.name : p.url
}

/** The `ops` of POST /transactions for `line`: absent (every participant votes), one list for
 * every participant, or a list per participant. When only some operations carry `--on`, the
 * others go to every participant: the list comes from the coordinator's /status (`all`). */
export async function opsBody(
  line: StartLine,
  all: () => Promise<string[]>,
): Promise<Op[] | Record<string, Op[]> | undefined> {
  if (line.ops.length === 0) return undefined
  const routed = line.ops.filter((o) => o.on.length > 0)
  if (routed.length === 0) return line.ops.map((o) => o.op)
  if (routed.length === line.ops.length) {
    const byKey: Record<string, Op[]> = {}
    for (const { op, on } of line.ops) {
      for (const key of new Set(on.map((p) => keyOf(participantOf(p))))) {
        ;(byKey[key] ??= []).push(op)
      }
    }
    return byKey
  }
  return mixedOps(line, await all())
}

/** Every participant's list by index, so "all" and the routed ones can be merged here. */
function mixedOps(line: StartLine, urls: string[]): Record<string, Op[]> {
  const byIndex: Op[][] = urls.map(() => [])
  for (const { op, on } of line.ops) {
    const indexes =
      on.length === 0 ? urls.map((_, i) => i) : on.map((p) => indexOf(p, urls, MIXED_HINT))
    for (const i of new Set(indexes)) byIndex[i]!.push(op)
  }
  return Object.fromEntries(byIndex.map((ops, i) => [String(i), ops]))
}

export function nameError(value: string, hint: string): UsageError {
  return new UsageError(
    `--on ${value}: a name cannot be resolved here (the coordinator's /status lists URLs ` +
      `only); ${hint}`,
  )
}

const MIXED_HINT = 'use an index or URL when some operations have no --on'

/** The index of the participant `value` names among the coordinator's `urls`. */
export function indexOf(value: string, urls: readonly string[], hint: string): number {
  const p = participantOf(value)
  const range = urls.length === 0 ? 'none' : `0-${urls.length - 1}`
  if ('name' in p) throw nameError(value, hint)
  const index = 'index' in p ? p.index : urls.indexOf(p.url)
  if (index < 0 || index >= urls.length) {
    throw new UsageError(`--on ${value}: the coordinator has no such participant (${range})`)
  }
  return index
}
