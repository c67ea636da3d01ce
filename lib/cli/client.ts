// The client: `bun coordinator.ts start|submit|show|status|get|help`, talking over HTTP to a
// running coordinator service (and, for `status` and `get`, to its participants).
import { parseArgs } from 'node:util'
import { UsageError } from './args.ts'
import { isTxnId, type Json, type Op } from '../core/index.ts'

const DEFAULT_COORDINATOR = 'http://127.0.0.1:8000'

export const CLIENT_USAGE = `usage:
  coordinator.ts [TXN ...] [--participant host:port]... [--timeout MS] [--dir .]   batch mode
  coordinator.ts serve [--port 8000] [--participant [NAME=]host:port]... [--dir .] service
  coordinator.ts start [ID] [2PC] [OP [--on P]...]...    run a transaction
  coordinator.ts submit FILE|-                   run a transaction given as JSON (POST body)
  coordinator.ts show ID                         look a transaction up
  coordinator.ts status                          the coordinator and each participant
  coordinator.ts get KEY [--on P]                read a key from participant P (default 0)
  coordinator.ts help                            this text

operations (keywords in any case; VALUE is JSON when it parses as JSON, else a string):
  SET KEY VALUE | INSERT KEY VALUE | DELETE KEY | ADD KEY AMOUNT [MIN N] | CHECK KEY [VALUE]
  --on P after an operation sends it only to participant P (index, name or URL; repeatable);
  operations without --on go to every participant.
  e.g. start TX2 ADD balance -100 MIN 0 --on 0 ADD balance 100 --on 1

client options: --coordinator URL (default $TWOPHASE_COORDINATOR, else ${DEFAULT_COORDINATOR}),
  --json (machine-readable output: one JSON object on stdout)

exit status: 0 committed (start, submit) or found (show, get, status); 1 aborted, not found,
  or the coordinator or a participant cannot be reached; 2 usage error, or a request the
  coordinator rejected as malformed`

/** Runs a client command; resolves to the exit status. Throws UsageError for usage errors and
 * Error for the rest, each printed as one line by the caller. */
export async function runClient(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  if (command === 'help' || rest.includes('--help') || rest.includes('-h')) {
    console.log(CLIENT_USAGE)
    return 0
  }
  try {
    switch (command) {
      case 'start':
        return await startCommand(rest)
      case 'submit':
        return await submitCommand(rest)
      case 'show':
        return await showCommand(rest)
      case 'status':
        return await statusCommand(rest)
      case 'get':
        return await getCommand(rest)
    }
  } catch (error) {
    if (isParseArgsError(error)) {
      // Node's messages go on with advice about `--`; the first sentence is the point.
      const message = (error as Error).message
        .split(/\.\s/)[0]!
        .replace(/^\w/, (c) => c.toLowerCase())
      throw new UsageError(`${command}: ${message} (see: coordinator.ts help)`)
    }
    throw error
  }
  throw new UsageError(`unknown command ${JSON.stringify(command)} (see: coordinator.ts help)`)
}

function isParseArgsError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')
}

const CLIENT_FLAGS = {
  coordinator: { type: 'string' },
  json: { type: 'boolean' },
} as const

type Target = { url: string; json: boolean }

function targetOf(values: { coordinator?: string; json?: boolean }): Target {
  const given = values.coordinator ?? (process.env.TWOPHASE_COORDINATOR || DEFAULT_COORDINATOR)
  return { url: baseUrl(given), json: values.json ?? false }
}

/** `host:port` or an http(s) URL, as a base URL without a trailing slash. */
function baseUrl(value: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`
  try {
    const url = new URL(withScheme)
    if (url.protocol === 'http:' || url.protocol === 'https:') {
      return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, '')}`
    }
  } catch {}
  throw new UsageError(`invalid --coordinator ${JSON.stringify(value)}: expected an http(s) URL`)
}

function expectPositionals(positionals: string[], names: string[], command: string): void {
  if (positionals.length < names.length) {
    throw new UsageError(`${command}: missing ${names[positionals.length]}`)
  }
  if (positionals.length > names.length) {
    throw new UsageError(`${command}: unexpected argument ${JSON.stringify(positionals.at(-1))}`)
  }
}

// ---- start: the one-line transaction ----

const KEYWORDS = ['set', 'insert', 'delete', 'add', 'check'] as const

function isKeyword(word: string): boolean {
  return (KEYWORDS as readonly string[]).includes(word.toLowerCase())
}

/** One operation of the line and the participants its `--on` flags name (none: all). */
type LineOp = { op: Op; on: string[] }
type StartLine = { id?: string; protocol?: '2pc'; ops: LineOp[] }

type Item = { kind: 'word'; value: string } | { kind: 'on'; value: string }

/** Parses `[ID] [2PC] [OP [--on P]...]...`: the words and `--on` flags in command-line order. */
function parseStartLine(items: readonly Item[]): StartLine {
  const line: StartLine = { ops: [] }
  let i = 0
  const word = () => (items[i]?.kind === 'word' ? items[i]!.value : undefined)
  const first = word()
  if (first !== undefined && !isKeyword(first) && !isProtocol(first)) {
    if (!isTxnId(first)) {
      throw new UsageError(`start: invalid transaction id ${JSON.stringify(first)}`)
    }
    line.id = first
    i += 1
  }
  const second = word()
  if (second !== undefined && isProtocol(second)) {
    if (second.toLowerCase() !== '2pc') {
      throw new UsageError(`start: unsupported protocol ${JSON.stringify(second)}: only 2PC`)
    }
    line.protocol = '2pc'
    i += 1
  }
  while (i < items.length) {
    const item = items[i]!
    if (item.kind === 'on') throw new UsageError('start: --on must follow an operation')
    if (!isKeyword(item.value)) {
      throw new UsageError(
        `start: expected an operation (SET, INSERT, DELETE, ADD or CHECK), ` +
          `got ${JSON.stringify(item.value)}`,
      )
    }
    const keyword = item.value.toLowerCase()
    i += 1
    const take = (what: string) => {
      const value = word()
      if (value === undefined) throw new UsageError(`start: ${keyword.toUpperCase()} needs ${what}`)
      i += 1
      return value
    }
    const key = take('a key')
    let op: Op
    if (keyword === 'set' || keyword === 'insert') {
      op = { op: keyword, key, value: valueOf(take('a value')) }
    } else if (keyword === 'delete') {
      op = { op: 'delete', key }
    } else if (keyword === 'add') {
      const amount = numberOf(take('an amount'), 'amount')
      op = { op: 'add', key, amount }
      if (word()?.toLowerCase() === 'min') {
        i += 1
        op = { ...op, min: numberOf(take('a number after MIN'), 'MIN') }
      }
    } else {
      const next = word()
      const hasValue = next !== undefined && !isKeyword(next)
      op = hasValue ? { op: 'check', key, equals: valueOf(take('a value')) } : { op: 'check', key }
    }
    const on: string[] = []
    while (items[i]?.kind === 'on') on.push(items[i++]!.value)
    line.ops.push({ op, on })
  }
  return line
}

function isProtocol(word: string): boolean {
  return /^\d+pc$/i.test(word)
}

/** A value on the command line: JSON when it parses as JSON, else the word as a string. */
function valueOf(text: string): Json {
  try {
    return JSON.parse(text) as Json
  } catch {
    return text
  }
}

function numberOf(text: string, what: string): number {
  const n = Number(text)
  if (!/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(text) || !Number.isFinite(n)) {
    throw new UsageError(`start: invalid ${what} ${JSON.stringify(text)}: expected a number`)
  }
  return n
}

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

function keyOf(p: Participant): string {
  return 'index' in p ? String(p.index) : 'name' in p ? p.name : p.url
}

/** The `ops` of POST /transactions for `line`: absent (every participant votes), one list for
 * every participant, or a list per participant. When only some operations carry `--on`, the
 * others go to every participant: the list comes from the coordinator's /status (`all`). */
async function opsBody(
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

function mixedOps(line: StartLine, urls: string[]): Record<string, Op[]> {
  const byIndex: Op[][] = urls.map(() => [])
  for (const { op, on } of line.ops) {
    const indexes =
      on.length === 0 ? urls.map((_, i) => i) : on.map((p) => indexOf(p, urls, MIXED_HINT))
    for (const i of new Set(indexes)) byIndex[i]!.push(op)
  }
  return Object.fromEntries(byIndex.map((ops, i) => [String(i), ops]))
}

function nameError(value: string, hint: string): UsageError {
  return new UsageError(
    `--on ${value}: a name cannot be resolved here (the coordinator's /status lists URLs ` +
      `only); ${hint}`,
  )
}

const MIXED_HINT = 'use an index or URL when some operations have no --on'

/** The index of the participant `value` names among the coordinator's `urls`. */
function indexOf(value: string, urls: readonly string[], hint: string): number {
  const p = participantOf(value)
  const range = urls.length === 0 ? 'none' : `0-${urls.length - 1}`
  if ('name' in p) throw nameError(value, hint)
  const index = 'index' in p ? p.index : urls.indexOf(p.url)
  if (index < 0 || index >= urls.length) {
    throw new UsageError(`--on ${value}: the coordinator has no such participant (${range})`)
  }
  return index
}

async function startCommand(argv: string[]): Promise<number> {
  // Negative numbers (`ADD balance -100`) are words, not flags: parse a masked copy and read
  // every word back from `argv` by its index.
  const masked = argv.map((a) => (/^-\.?\d/.test(a) ? '0' : a))
  const { values, tokens } = parseArgs({
    args: masked,
    options: { ...CLIENT_FLAGS, on: { type: 'string', multiple: true } },
    allowPositionals: true,
    strict: true,
    tokens: true,
  })
  const items: Item[] = []
  for (const token of tokens) {
    if (token.kind === 'positional') items.push({ kind: 'word', value: argv[token.index]! })
    if (token.kind === 'option' && token.name === 'on') {
      // The value as typed (the masked copy may have changed it).
      const value = token.inlineValue ? token.value : argv[token.index + 1]
      items.push({ kind: 'on', value: value ?? '' })
    }
  }
  const line = parseStartLine(items)
  const target = targetOf(values)
  const ops = await opsBody(line, async () => {
    const status = await call(target.url, '/status', 'the coordinator')
    return (status.body.participants as { url: string }[]).map((p) => p.url)
  })
  const body = {
    ...(line.id === undefined ? {} : { id: line.id }),
    ...(line.protocol === undefined ? {} : { protocol: line.protocol }),
    ...(ops === undefined ? {} : { ops }),
  }
  return postTransaction(target, JSON.stringify(body), line.id)
}

// ---- submit, show ----

async function submitCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: CLIENT_FLAGS,
    allowPositionals: true,
    strict: true,
  })
  expectPositionals(positionals, ['FILE (or - for stdin)'], 'submit')
  const file = positionals[0]!
  const name = file === '-' ? 'stdin' : file
  let text: string
  try {
    text = file === '-' ? await Bun.stdin.text() : await Bun.file(file).text()
  } catch (error) {
    const code = (error as { code?: string }).code
    throw new UsageError(`submit: cannot read ${name}${code ? ` (${code})` : ''}`)
  }
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    throw new UsageError(`submit: ${name} is not valid JSON`)
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new UsageError(`submit: ${name} must hold a JSON object (the body of POST /transactions)`)
  }
  return postTransaction(targetOf(values), text, (body as { id?: unknown }).id)
}

/** POST /transactions. A repeated id answers the recorded outcome without running anything,
 * so the id is looked up first to say so (on stderr). */
async function postTransaction(target: Target, body: string, id: unknown): Promise<number> {
  let before: string | undefined
  if (isTxnId(id)) {
    before = (await call(target.url, `/transactions/${id}`, 'the coordinator')).body.state
  }
  const init = { method: 'POST', headers: { 'content-type': 'application/json' }, body }
  const { body: outcome } = await call(target.url, '/transactions', 'the coordinator', init)
  print(target, outcome, () => outcomeLines(outcome))
  if (before === 'commit' || before === 'abort') {
    console.error(`note: ${id} was decided before: this is its recorded outcome; nothing ran again`)
  }
  return outcome.decision === 'commit' ? 0 : 1
}

async function showCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: CLIENT_FLAGS,
    allowPositionals: true,
    strict: true,
  })
  expectPositionals(positionals, ['ID'], 'show')
  const id = positionals[0]!
  if (!isTxnId(id)) throw new UsageError(`show: invalid transaction id ${JSON.stringify(id)}`)
  const target = targetOf(values)
  const { body } = await call(target.url, `/transactions/${id}`, 'the coordinator')
  const unknown = body.state === 'unknown'
  print(target, body, () =>
    unknown ? [`${id}: unknown (never started here; presumed abort)`] : outcomeLines(body),
  )
  return unknown ? 1 : 0
}

/** An outcome (POST /transactions, GET /transactions/:id) as a headline and a line per vote. */
function outcomeLines(o: any): string[] {
  const state = o.state ?? o.decision
  // Presumed abort: an abort is sent once and never acknowledged; one who missed it asks.
  const delivery = o.acknowledged
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
  return lines
}

// ---- status, get ----

async function statusCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: CLIENT_FLAGS,
    allowPositionals: true,
    strict: true,
  })
  expectPositionals(positionals, [], 'status')
  const target = targetOf(values)
  const { body: coordinator } = await call(target.url, '/status', 'the coordinator')
  const urls = (coordinator.participants as { url: string }[]).map((p) => p.url)
  const participants = await Promise.all(
    urls.map(async (url, i) => {
      try {
        const init = { signal: AbortSignal.timeout(5000) }
        const { body } = await call(url, '/status', `participant ${i}`, init)
        return { url, reachable: true, status: body }
      } catch (error) {
        return { url, reachable: false, error: (error as Error).message }
      }
    }),
  )
  const all = { coordinator: { url: target.url, ...coordinator }, participants }
  print(target, all, () => statusLines(target.url, coordinator, participants))
  return 0
}

function statusLines(url: string, c: any, participants: any[]): string[] {
  const n = c.counts ?? {}
  const lines = [
    `coordinator ${url}: ${n.commit ?? 0} commit, ${n.abort ?? 0} abort, ` +
      `${n.preparing ?? 0} preparing, ${n.delivering ?? 0} delivering`,
  ]
  for (const d of c.delivering ?? []) {
    lines.push(`  delivering ${d.id} (${d.decision}) to ${d.waitingFor.join(', ')}`)
  }
  participants.forEach((p, i) => {
    if (!p.reachable) {
      lines.push(`participant ${i} ${p.url}: unreachable`)
      return
    }
    const s = p.status
    const k = s.counts ?? {}
    lines.push(
      `participant ${i} ${p.url}: ${k.committed ?? 0} committed, ${k.aborted ?? 0} aborted, ` +
        `${k.prepared ?? 0} prepared`,
    )
    lines.push(`  prepared: ${listOf(s.prepared ?? [])}`)
    const inDoubt = (s.inDoubt ?? []).map(
      (d: any) => `${d.txn} (waited ${d.waitedMs} ms, asked ${d.asks} times)`,
    )
    lines.push(`  in doubt: ${listOf(inDoubt)}`)
    const locks = Object.entries(s.locks ?? {}).map(([key, txn]) => `${key} (${txn})`)
    lines.push(`  locks: ${listOf(locks)}`)
    const heuristic = (s.heuristic ?? []).map((h: any) => `${h.txn}=${h.state}`)
    if (heuristic.length > 0) lines.push(`  heuristic: ${listOf(heuristic)}`)
  })
  return lines
}

function listOf(items: readonly string[]): string {
  return items.length === 0 ? 'none' : items.join(', ')
}

async function getCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { ...CLIENT_FLAGS, on: { type: 'string' } },
    allowPositionals: true,
    strict: true,
  })
  expectPositionals(positionals, ['KEY'], 'get')
  const key = positionals[0]!
  const target = targetOf(values)
  const on = values.on ?? '0'
  if ('name' in participantOf(on)) throw nameError(on, 'use an index or URL')
  const { body: status } = await call(target.url, '/status', 'the coordinator')
  const urls = (status.participants as { url: string }[]).map((x) => x.url)
  const index = indexOf(on, urls, 'use an index or URL')
  const url = urls[index]!
  const path = `/kv/${encodeURIComponent(key)}`
  const { status: code, body } = await call(url, path, `participant ${index}`, {}, [404])
  const found = code !== 404
  const out = found
    ? { key, value: body.value, participant: url }
    : { key, absent: true, participant: url }
  print(target, out, () => [found ? `${key}: ${JSON.stringify(body.value)}` : `${key}: absent`])
  return found ? 0 : 1
}

// ---- HTTP and output ----

/** A request whose answer is JSON; a failure (unreachable, an error answer) throws one line. */
async function call(
  base: string,
  path: string,
  who: string,
  init: RequestInit = {},
  accept: number[] = [],
): Promise<{ status: number; body: any }> {
  let response: Response
  try {
    response = await fetch(`${base}${path}`, {
      ...init,
      headers: { accept: 'application/json', ...(init.headers as Record<string, string>) },
    })
  } catch {
    throw new Error(`cannot reach ${who} at ${base}`)
  }
  const text = await response.text()
  let body: any
  try {
    body = JSON.parse(text)
  } catch {
    throw new Error(`${who} at ${base} answered ${path} with HTTP ${response.status}, not JSON`)
  }
  if (response.ok || accept.includes(response.status)) return { status: response.status, body }
  const message = `${who} refused ${path} (HTTP ${response.status}): ${body?.error ?? text}`
  // A 400 or 413 means the request was malformed, which is the command line's fault.
  throw response.status === 400 || response.status === 413
    ? new UsageError(message)
    : new Error(message)
}

function print(target: Target, json: unknown, human: () => string[]): void {
  console.log(target.json ? JSON.stringify(json) : human().join('\n'))
}
