// The workload: clients that run the bank's transfers through the coordinator one after another,
// and retry with the same id when the coordinator goes down under them.
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
   * from a plan drawn lazily from the seed. */
  start(bank: Bank, accounts: number, seed: number, concurrency: number): void {
    const planRandom = mulberry32(seed)
    let planned = 0
    const nextTransfer = (): Transfer => {
      const [t] = planTransfers(1, accounts, planRandom, { prefix: 'xfer' })
      return { ...t!, id: `xfer-${planned++}` }
    }
    const client = async () => {
      while (!this.stopped && !this.giveUp()) {
        const t = nextTransfer()
        this.outcomes.push(await runTransfer(bank, t, this.giveUp))
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
): Promise<{ decision?: 'commit' | 'abort'; error?: string }> {
  try {
    const url = `${bank.coordinator}/transactions`
    const response = await send(bank, 'POST', url, { text, timeoutMs: 30_000 })
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
