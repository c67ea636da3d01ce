// The client's commands: start, submit and show run or look up a transaction on the
// coordinator; status and get read the coordinator and its participants. Each resolves to the
// exit status; usage errors throw UsageError before any request is sent.
import { parseArgs } from 'node:util'
import { UsageError } from './args.ts'
import { CLIENT_FLAGS, NoAnswer, call, participantUrls, targetOf, type Target } from './http.ts'
import { noOutcome } from './no-answer.ts'
import { outcomeLines, print, statusLines } from './output.ts'
import { indexOf, isName, nameError, opsBody } from './routing.ts'
import { readStartLine } from './start-line.ts'
import { intervalOf, watch } from './watch.ts'
import { isTxnId } from '../core/index.ts'
import { newTxnId } from '../wire/coordinator.ts'

function expectPositionals(positionals: string[], names: string[], command: string): void {
  if (positionals.length < names.length) {
    throw new UsageError(`${command}: missing ${names[positionals.length]}`)
  }
  if (positionals.length > names.length) {
    throw new UsageError(`${command}: unexpected argument ${JSON.stringify(positionals.at(-1))}`)
  }
}

/** The flags and words of a command that takes only the client flags. */
function parseClientArgs(argv: string[]) {
  return parseArgs({ args: argv, options: CLIENT_FLAGS, allowPositionals: true, strict: true })
}

/** `start [ID] [2PC] [OP [--on P]...]...`: the line as the body of POST /transactions. */
export async function startCommand(argv: string[]): Promise<number> {
  const { values, line } = readStartLine(argv)
  const target = targetOf(values, 'decide')
  // The coordinator's participants are asked for only when the routing needs them.
  const ops = await opsBody(line, () => participantUrls(target))
  // An id of our own when the line has none, so that one without an answer can be named.
  const id = line.id ?? newTxnId()
  const body = {
    id,
    ...(line.protocol === undefined ? {} : { protocol: line.protocol }),
    ...(ops === undefined ? {} : { ops }),
  }
  return postTransaction(target, JSON.stringify(body), id, line.id !== undefined)
}

/** `submit FILE|-`: the file's JSON object as it is, so every field of the API is reachable. */
export async function submitCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseClientArgs(argv)
  expectPositionals(positionals, ['FILE (or - for stdin)'], 'submit')
  const target = targetOf(values, 'decide')
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
  return postTransaction(target, text, (body as { id?: unknown }).id, true)
}

/** POST /transactions. A repeated id answers the recorded outcome without running anything,
 * so a given id is looked up first to say so (on stderr). No answer within --timeout is an
 * error that says what the coordinator is waiting for. */
async function postTransaction(
  target: Target,
  body: string,
  id: unknown,
  given: boolean,
): Promise<number> {
  const coordinator = (path: string, init?: RequestInit) =>
    call(target.url, path, 'the coordinator', target.timeoutMs, init)
  let before: string | undefined
  if (given && isTxnId(id)) before = (await coordinator(`/transactions/${id}`)).body.state
  const init = { method: 'POST', headers: { 'content-type': 'application/json' }, body }
  let outcome: any
  try {
    outcome = (await coordinator('/transactions', init)).body
  } catch (error) {
    if (error instanceof NoAnswer) throw new Error(await noOutcome(target, id))
    throw error
  }
  print(target, outcome, () => outcomeLines(outcome))
  if (outcome.state === 'preparing') {
    console.error(
      `note: ${id} is not decided yet (its participant cannot be reached); ` +
        `\`coordinator.ts show ${id}\` tells once it is`,
    )
  }
  if (before === 'commit' || before === 'abort') {
    console.error(`note: ${id} was decided before: this is its recorded outcome; nothing ran again`)
  }
  return exitOf(outcome)
}

/** 0 committed, 1 aborted, 3 heuristic: a participant refused the decision, its outcome differs
 * (an operator's), so the transaction is not atomic there and someone must look. */
function exitOf(outcome: { decision?: unknown; heuristic?: unknown }): number {
  if (outcome.heuristic === true) return 3
  return outcome.decision === 'commit' ? 0 : 1
}

/** `show ID`: exits 1 for a transaction the coordinator never started. */
export async function showCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseClientArgs(argv)
  expectPositionals(positionals, ['ID'], 'show')
  const id = positionals[0]!
  if (!isTxnId(id)) throw new UsageError(`show: invalid transaction id ${JSON.stringify(id)}`)
  const target = targetOf(values)
  const path = `/transactions/${id}`
  const { body } = await call(target.url, path, 'the coordinator', target.timeoutMs)
  const unknown = body.state === 'unknown'
  print(target, body, () =>
    unknown ? [`${id}: unknown (never started here; presumed abort)`] : outcomeLines(body),
  )
  return unknown ? 1 : body.heuristic === true ? 3 : 0
}

/** `status`: every participant's block is printed, reachable or not; one that cannot be
 * reached makes it exit 1, with one line on stderr that names it. With --watch, the picture is
 * redrawn every --interval ms until Ctrl-C (lib/cli/watch.ts). */
export async function statusCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { ...CLIENT_FLAGS, watch: { type: 'boolean' }, interval: { type: 'string' } },
    allowPositionals: true,
    strict: true,
  })
  expectPositionals(positionals, [], 'status')
  const target = targetOf(values)
  if (values.watch) {
    const intervalMs = intervalOf(values.interval)
    return watch(
      () => statusRound(target).catch((e) => unreachable(target, e)),
      intervalMs,
      target.json,
    )
  }
  const { lines, json, down } = await statusRound(target)
  print(target, json, () => lines)
  if (down.length > 0) console.error(`error: ${down.join('; ')}`)
  return down.length > 0 ? 1 : 0
}

/** What `status` shows now, and which participants could not be reached. */
async function statusRound(target: Target) {
  const { timeoutMs } = target
  const { body: coordinator } = await call(target.url, '/status', 'the coordinator', timeoutMs)
  const urls = (coordinator.participants as { url: string }[]).map((p) => p.url)
  const participants = await Promise.all(
    urls.map(async (url, i) => {
      try {
        const { body } = await call(url, '/status', `participant ${i}`, timeoutMs)
        return { url, reachable: true, status: body }
      } catch (error) {
        return { url, reachable: false, error: (error as Error).message }
      }
    }),
  )
  const json = { coordinator: { url: target.url, ...coordinator }, participants }
  const down = participants.flatMap((p) => (p.reachable ? [] : [p.error!]))
  return { lines: statusLines(target.url, coordinator, participants), json, down }
}

/** A watched coordinator that does not answer: said on the screen, and the watch goes on. */
function unreachable(target: Target, error: unknown) {
  const message = error instanceof Error ? error.message : String(error)
  return { lines: [`coordinator ${target.url}: ${message}`], json: { error: message } }
}

/** `get KEY [--on P]`: read from the participant directly, where the committed value lives. */
export async function getCommand(argv: string[]): Promise<number> {
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
  // Checked before any request: a name is an error whatever the coordinator answers.
  if (isName(on)) throw nameError(on, 'use an index or URL')
  const urls = await participantUrls(target)
  const index = indexOf(on, urls, 'use an index or URL')
  const url = urls[index]!
  const path = `/kv/${encodeURIComponent(key)}`
  const who = `participant ${index}`
  const { status: code, body } = await call(url, path, who, target.timeoutMs, {}, [404])
  const found = code !== 404
  const out = found
    ? { key, value: body.value, participant: url }
    : { key, absent: true, participant: url }
  print(target, out, () => [found ? `${key}: ${JSON.stringify(body.value)}` : `${key}: absent`])
  return found ? 0 : 1
}
