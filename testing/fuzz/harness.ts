// Sends fuzzed requests through a node's app and checks every answer: right (oracle.ts), and,
// when refused or only a read, without a trace in the node's state. Counts what it saw.
import type { Hono } from 'hono'
import { proofOf } from '../../lib/wire/auth.ts'
import { leak, problemOf, type Answer } from './oracle.ts'
import { bodyless, describeRequest, type FuzzRequest } from './requests.ts'
import type { Snapshot, Target } from './targets.ts'

/** The headers that prove a request (for a cluster with a secret), and whether the proof is
 * meant to hold; `body` is the text the server will read. */
export type Proof = { headers: Record<string, string>; valid: boolean }
export type Sign = (request: { method: string; path: string; body: string }) => Proof

/** Proofs of `secret`: a valid one for most requests; none for one in ten and one for another
 * body for one in ten (which are to be refused), chosen by the request so a replay agrees. */
export function signer(secret: string): Sign {
  return ({ method, path, body }): Proof => {
    const url = new URL(`http://localhost${path}`)
    const request = { method, path: url.pathname + url.search, body }
    const pick = Bun.hash.crc32(`${method} ${path} ${body}`) % 10
    if (pick === 0) return { headers: {}, valid: false }
    const signed = pick === 1 ? { ...request, body: `${body} ` } : request
    return { headers: { authorization: proofOf(secret, signed, Date.now()) }, valid: pick !== 1 }
  }
}

/** How long one answer may take: a prepare to an unreachable participant takes 200 ms. */
export const ANSWER_WITHIN_MS = 5000

export type Sent = Answer & { proof?: boolean }

/** `request` through `app.fetch`, as Bun.serve would pass it, with `sign`'s headers added. */
export async function send(app: Hono, request: FuzzRequest, sign?: Sign): Promise<Sent> {
  const { method, path, body } = request
  const proof = sign?.({ method, path, body: serverText(body) })
  const headers = { ...request.headers, ...proof?.headers }
  const init = { method, headers, ...(body === undefined ? {} : { body }) }
  const response = app.fetch(new Request(`http://localhost${path}`, init))
  let timer: Timer | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no answer within ${ANSWER_WITHIN_MS} ms`)),
      ANSWER_WITHIN_MS,
    )
  })
  try {
    const answer = await Promise.race([Promise.resolve(response), late])
    const text = await answer.text()
    return { status: answer.status, text, headers: answer.headers, proof: proof?.valid }
  } finally {
    clearTimeout(timer)
  }
}

/** The body as the server reads it: UTF-8 decoded as fetch's `text()` does (a leading BOM
 * dropped, a lone surrogate or a bad byte as U+FFFD). */
function serverText(body: FuzzRequest['body']): string {
  if (body === undefined) return ''
  return new TextDecoder().decode(typeof body === 'string' ? new TextEncoder().encode(body) : body)
}

/** The requests open to all (lib/http/auth.ts, lib/http/dashboard/): GET /healthz, and the
 * dashboard's page and assets, which hold no data (GET, and HEAD which Hono answers alike). */
function isOpen(request: FuzzRequest): boolean {
  const path = request.path
  if (/^GET$/i.test(request.method) && /^\/healthz(\?|$)/.test(path)) return true
  const page = /^\/(assets\/uPlot\.(iife\.min\.js|min\.css))?(\?|$)/.test(path)
  return /^(GET|HEAD)$/i.test(request.method) && page
}

/** What is wrong with the answer to a request sent with a proof (`proof` true) or without one
 * that holds (false): the first is never refused as unauthorized; the second is, unless it
 * is open to all (`isOpen`) or refused before anyone looks at a proof (405, 413). */
export function proofProblem(request: FuzzRequest, sent: Sent): string | null {
  if (sent.proof === undefined) return null
  if (sent.proof) return sent.status === 401 ? `401 despite a valid proof: ${sent.text}` : null
  if (isOpen(request) || [401, 405, 413].includes(sent.status)) return null
  return `${sent.status} without a valid proof: ${sent.text.slice(0, 200)}`
}

export class Tally {
  cases = 0
  ok = 0
  refused = 0
  failed = 0
  changes = 0
  readonly statuses = new Map<number, number>()

  count(status: number): void {
    this.cases += 1
    this.statuses.set(status, (this.statuses.get(status) ?? 0) + 1)
    if (status >= 200 && status < 300) this.ok += 1
    else if (status >= 400 && status < 500) this.refused += 1
    else if (status >= 500) this.failed += 1
  }

  line(): string {
    return (
      `fuzz: ${this.cases} cases, ${this.ok} 2xx, ${this.refused} 4xx, ${this.failed} 5xx, ` +
      `${this.changes} state changes from refused requests`
    )
  }

  /** Statuses seen and how often, in order. */
  breakdown(): string {
    return [...this.statuses]
      .sort(([a], [b]) => a - b)
      .map(([s, n]) => `${s}: ${n}`)
      .join(', ')
  }
}

/** The parts of `after` that differ from `before`, or an empty list. */
export function changedParts(before: Snapshot, after: Snapshot): string[] {
  return Object.keys({ ...before, ...after }).filter((p) => !samePart(before[p], after[p]))
}

/** Maps hold immutable values (a node replaces a transaction's state, never edits it), so
 * most entries are the very same object; others are compared as JSON. */
function samePart(a: Snapshot[string] | undefined, b: Snapshot[string] | undefined): boolean {
  if (typeof a !== 'object' || typeof b !== 'object') return a === b
  if (a.size !== b.size) return false
  for (const [key, value] of a) {
    const other = b.get(key)
    if (other !== value && JSON.stringify(other) !== JSON.stringify(value)) return false
  }
  return true
}

/** Runs requests against one target, one at a time, checking each answer and, for a refused
 * request or a read, that the node's state did not change. */
export class Fuzzer {
  #current: Snapshot | null = null

  constructor(
    readonly target: Target,
    readonly tally: Tally,
    readonly sign?: Sign,
  ) {}

  /** The state last seen is no longer current (requests were sent around this fuzzer). */
  forget(): void {
    this.#current = null
  }

  /** Checks one request; throws a one-line description of what went wrong. */
  async run(request: FuzzRequest): Promise<void> {
    const { target, tally } = this
    const before = this.#current ?? (await target.snapshot())
    this.#current = null
    const answer = await send(target.app, request, this.sign)
    tally.count(answer.status)
    target.answered(request, answer)
    const where = `${target.name}: ${describeRequest(request)}`
    const problem =
      proofProblem(request, answer) ?? problemOf(target.routes, request, answer, target.facts)
    if (problem !== null) throw new Error(`${problem}\n  after ${where}`)
    const refused = answer.status >= 400 && answer.status < 500
    if (!refused && !bodyless(request.method)) return
    const after = await target.snapshot()
    const changed = changedParts(before, after)
    if (changed.length > 0) {
      if (refused) tally.changes += 1
      throw new Error(`${answer.status} changed ${changed.join(', ')}\n  after ${where}`)
    }
    this.#current = after
  }
}

/** Sends `requests` all at once and checks each answer, against no facts: the node moves on
 * while they run. Their effects on the state are not checked (they overlap). */
export async function runTogether(fuzzer: Fuzzer, requests: readonly FuzzRequest[]) {
  const { target, tally, sign } = fuzzer
  await target.snapshot() // no earlier work still running
  fuzzer.forget()
  const answers = await Promise.all(requests.map((r) => send(target.app, r, sign)))
  const problems = requests.flatMap((request, i) => {
    const answer = answers[i]!
    tally.count(answer.status)
    target.answered(request, answer)
    const problem = proofProblem(request, answer) ?? problemOf(target.routes, request, answer)
    return problem === null ? [] : [`${problem}\n  after ${describeRequest(request)}`]
  })
  if (problems.length > 0) {
    throw new Error(`${target.name}, ${requests.length} at once: ${problems.join('\n')}`)
  }
}

/** console.error and console.warn kept while `run` runs, then put back. */
export async function capturingConsole<T>(run: () => Promise<T>): Promise<[T, string[]]> {
  const lines: string[] = []
  const { error, warn } = console
  const keep = (...args: unknown[]) => {
    lines.push(args.map((a) => (a instanceof Error ? (a.stack ?? String(a)) : String(a))).join(' '))
  }
  console.error = keep
  console.warn = keep
  try {
    return [await run(), lines]
  } finally {
    console.error = error
    console.warn = warn
  }
}

/** The first captured line that leaks a crash, or null. */
export function leakedLine(lines: readonly string[]): string | null {
  for (const line of lines) if (leak(line) !== null) return line
  return null
}
