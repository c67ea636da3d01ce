// The workload: clients that run the bank's transfers through the coordinator one after another,
// and retry with the same id when the coordinator goes down under them. With several
// coordinators on one log each client has its own, and retries at the next one.
import {
  accountKey,
  homeOf,
  mulberry32,
  planTransfers,
  send,
  type Bank,
  type Transfer,
} from '../bank.ts'
import type { ClientOutcome } from './types.ts'
import { message } from './util.ts'

const RETRY_LIMIT_MS = 120_000
/** On a shared log a client waits this long for a coordinator before it tries the next one: a
 * stalled coordinator holds its requests (the coordinator itself answers 202 after its prepare
 * timeout when a transaction is not decided yet). */
const SHARED_REQUEST_MS = 4000

export type Shared = { coordinators: readonly string[]; prefix: string }

export class Workload {
  readonly outcomes: ClientOutcome[] = []
  /** Every client, done once each has finished the transfer it began. */
  done: Promise<unknown> = Promise.resolve()
  private stopped = false
  private abandoned = false

  constructor(private readonly aborted: () => boolean) {}

  /** True once the clients should give up retrying too (an error, or an interrupt). */
  giveUp = (): boolean => this.abandoned || this.aborted()

  /** Starts `concurrency` clients, each running one transfer after another until told to stop,
   * from a plan drawn lazily from the seed. With `shared` (several coordinators on one log),
   * client k starts at coordinator k mod N, and ids are `PREFIX-N` (a log given by URL may hold
   * an earlier run's). */
  start(bank: Bank, accounts: number, seed: number, concurrency: number, shared?: Shared): void {
    const planRandom = mulberry32(seed)
    let planned = 0
    const prefix = shared?.prefix ?? 'xfer'
    const nextTransfer = (): Transfer => {
      const [t] = planTransfers(1, accounts, planRandom, { prefix })
      return { ...t!, id: `${prefix}-${planned++}` }
    }
    const client = async (_: unknown, k: number) => {
      while (!this.stopped && !this.giveUp()) {
        const t = nextTransfer()
        const outcome = shared
          ? await runSharedTransfer(bank, shared.coordinators, k, t, this.giveUp)
          : await runTransfer(bank, t, this.giveUp)
        this.outcomes.push(outcome)
      }
    }
    this.done = Promise.all(Array.from({ length: concurrency }, client))
  }

  /** No new transfers; the ones begun are finished (and retried). */
  stop(): void {
    this.stopped = true
  }

  /** No new transfers and no more retries. */
  abandon(): void {
    this.stopped = this.abandoned = true
  }
}

/** One transfer as a client does it: POST it; if the request fails (the coordinator is down),
 * wait until the coordinator answers, then ask what it recorded: an id it never recorded is
 * aborted (presumed abort) and not run again; a recorded one is POSTed again with the same id,
 * which answers the recorded outcome (or waits for the decision). */
async function runTransfer(
  bank: Bank,
  t: Transfer,
  abandon: () => boolean,
): Promise<ClientOutcome> {
  const body = transactionBody(bank, t)
  let reply = await postTransaction(bank, body)
  if (reply.decision) return { ...t, decision: reply.decision, how: 'reply' }
  const giveUp = Date.now() + RETRY_LIMIT_MS
  for (let attempt = 0; ; attempt++) {
    if (Date.now() > giveUp || abandon()) {
      return { ...t, decision: null, how: 'lost', error: reply.error }
    }
    const ceiling = Math.min(400, 25 * 2 ** attempt)
    await Bun.sleep(ceiling / 2 + (ceiling / 2) * Math.random())
    const state = await transactionState(bank, t.id)
    if (state === null) continue // still down
    if (state === 'unknown') return { ...t, decision: 'abort', how: 'unrecorded' }
    reply = await postTransaction(bank, body)
    if (reply.decision) return { ...t, decision: reply.decision, how: 'retried' }
  }
}

/** One transfer on a shared log: POSTed to the client's coordinator; when that fails (refused,
 * 5xx, 202 not decided yet, timeout), POSTed again with the same id to the next coordinator,
 * and so on round, until one answers a decision. Whichever coordinator claimed the id first
 * runs it; the others answer its outcome from the log. No `GET` shortcut here: `unknown` from
 * one coordinator does not mean that a stalled one will not claim it yet. */
async function runSharedTransfer(
  bank: Bank,
  coordinators: readonly string[],
  first: number,
  t: Transfer,
  abandon: () => boolean,
): Promise<ClientOutcome> {
  const body = transactionBody(bank, t)
  const giveUp = Date.now() + RETRY_LIMIT_MS
  let error = ''
  for (let attempt = 0; ; attempt++) {
    const at = coordinators[(first + attempt) % coordinators.length]!
    const reply = await postTransaction({ ...bank, coordinator: at }, body, SHARED_REQUEST_MS)
    if (reply.decision) {
      return { ...t, decision: reply.decision, how: attempt === 0 ? 'reply' : 'retried' }
    }
    error = `${at}: ${reply.error}`
    if (Date.now() > giveUp || abandon()) return { ...t, decision: null, how: 'lost', error }
    // A whole round failed: every coordinator is down or the log is; back off a little.
    if ((attempt + 1) % coordinators.length === 0) await Bun.sleep(50 + 150 * Math.random())
  }
}

/** The transfer as a transaction: the debit (never below 0) and the credit, each sent to the
 * participant that holds the account. */
function transactionBody(bank: Bank, t: Transfer): string {
  const ops: Record<number, object[]> = {}
  ;(ops[homeOf(bank, t.from)] ??= []).push({
    op: 'add',
    key: accountKey(t.from),
    amount: -t.amount,
    min: 0,
  })
  ;(ops[homeOf(bank, t.to)] ??= []).push({ op: 'add', key: accountKey(t.to), amount: t.amount })
  return JSON.stringify({ id: t.id, ops })
}

async function postTransaction(
  bank: Bank,
  text: string,
  timeoutMs = 30_000,
): Promise<{ decision?: 'commit' | 'abort'; error?: string }> {
  try {
    const url = `${bank.coordinator}/transactions`
    const response = await send(bank, 'POST', url, { text, timeoutMs })
    const reply = (await response.json().catch(() => null)) as { decision?: unknown } | null
    const decision = reply?.decision
    if (response.status === 200 && (decision === 'commit' || decision === 'abort')) {
      return { decision }
    }
    return { error: `HTTP ${response.status}: ${JSON.stringify(reply)}` }
  } catch (error) {
    return { error: message(error) }
  }
}

/** The coordinator's `state` for `id`, or null when it cannot be reached. */
async function transactionState(bank: Bank, id: string): Promise<string | null> {
  try {
    const url = `${bank.coordinator}/transactions/${id}`
    const response = await send(bank, 'GET', url, { timeoutMs: 2000 })
    if (!response.ok) return null
    const body = (await response.json()) as { state?: unknown }
    return typeof body.state === 'string' ? body.state : null
  } catch {
    return null
  }
}
