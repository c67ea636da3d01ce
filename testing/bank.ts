// The bank workload that the example (examples/bank.ts), the tests and the chaos run share:
// accounts spread over the coordinator's participants (account i lives on participant
// i % n as key `acct:<i>`), random concurrent transfers, each ONE transaction through the
// coordinator service, and a check that no money was made or lost on the way.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawnCoordinatorService, spawnParticipant, type Node } from './nodes.ts'
import { mulberry32 } from '../lib/core/index.ts'

/** A coordinator service and its participants, in the coordinator's order (index = ops key). */
export type Bank = { coordinator: string; participants: readonly string[] }

export type Transfer = { id: string; from: number; to: number; amount: number }

export type Outcome = Transfer & {
  /** null when the request itself failed (see `error`): the outcome is then unknown here. */
  decision: 'commit' | 'abort' | null
  votes: Record<string, 'yes' | 'no' | null>
  reasons: Record<string, string>
  error?: string
}

export { mulberry32 } // a seed always plans the same transfers

export const accountKey = (account: number): string => `acct:${account}`

/** The index of the participant that holds `account`. */
export function homeOf(bank: Bank, account: number): number {
  return account % bank.participants.length
}

async function getJson(url: string): Promise<any> {
  const response = await fetch(url, { signal: AbortSignal.timeout(5000) })
  if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status} ${await response.text()}`)
  return response.json()
}

async function postTransaction(bank: Bank, body: unknown): Promise<{ status: number; body: any }> {
  const response = await fetch(`${bank.coordinator}/transactions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  return { status: response.status, body: await response.json().catch(() => null) }
}

/** The bank behind a running coordinator service: its participants from `GET /status`. */
export async function connect(coordinator: string): Promise<Bank> {
  const url = coordinator.replace(/\/+$/, '')
  const status = await getJson(`${url}/status`)
  const participants = (status.participants as { url: string }[]).map((p) => p.url)
  if (participants.length === 0) throw new Error(`${url} has no participants`)
  return { coordinator: url, participants }
}

/** Opens accounts 0..count-1 with `initial` each: one transaction per participant that `insert`s
 * the accounts it lacks. Accounts that already exist keep their balance, so a re-run is fine. */
export async function openAccounts(
  bank: Bank,
  count: number,
  initial: number,
): Promise<{ opened: number; existing: number }> {
  const perParticipant = await Promise.all(
    bank.participants.map(async (url, p) => {
      const existing = new Set((await listAccounts(url)).keys())
      const missing = []
      for (let i = p; i < count; i += bank.participants.length) {
        if (!existing.has(i)) missing.push(i)
      }
      for (let start = 0; start < missing.length; start += 1000) {
        const chunk = missing.slice(start, start + 1000) // at most 1000 ops per participant
        const ops = chunk.map((i) => ({ op: 'insert', key: accountKey(i), value: initial }))
        const reply = await postTransaction(bank, { ops: { [p]: ops } })
        if (reply.body?.decision !== 'commit') {
          const why = reply.body?.error ?? JSON.stringify(reply.body?.reasons)
          throw new Error(`opening accounts on ${url} failed (HTTP ${reply.status}): ${why}`)
        }
      }
      return missing.length
    }),
  )
  const opened = perParticipant.reduce((a, b) => a + b, 0)
  return { opened, existing: count - opened }
}

/** The committed accounts on one participant, by account number. */
async function listAccounts(url: string): Promise<Map<number, unknown>> {
  const { items } = await getJson(`${url}/kv?prefix=acct:&limit=10000`)
  const accounts = new Map<number, unknown>()
  for (const { key, value } of items as { key: string; value: unknown }[]) {
    const match = /^acct:(\d+)$/.exec(key)
    if (match) accounts.set(Number(match[1]), value)
  }
  return accounts
}

/** `count` transfers between distinct random accounts, of 1..maxAmount each, ids `PREFIX-N`. */
export function planTransfers(
  count: number,
  accounts: number,
  random: () => number,
  options: { prefix: string; maxAmount?: number },
): Transfer[] {
  if (accounts < 2) throw new Error('a transfer needs at least 2 accounts')
  const maxAmount = options.maxAmount ?? 50
  return Array.from({ length: count }, (_, n) => {
    const from = Math.floor(random() * accounts)
    const to = (from + 1 + Math.floor(random() * (accounts - 1))) % accounts // never `from`
    const amount = 1 + Math.floor(random() * maxAmount)
    return { id: `${options.prefix}-${n}`, from, to, amount }
  })
}

/** Moves `t.amount` from `t.from` to `t.to` as ONE transaction: `add -amount` with `min: 0` on the
 * payer's participant and `add +amount` on the payee's (both on one, if they share it). */
export async function transfer(bank: Bank, t: Transfer): Promise<Outcome> {
  const ops: Record<number, object[]> = {}
  const debit = { op: 'add', key: accountKey(t.from), amount: -t.amount, min: 0 }
  const credit = { op: 'add', key: accountKey(t.to), amount: t.amount }
  ;(ops[homeOf(bank, t.from)] ??= []).push(debit)
  ;(ops[homeOf(bank, t.to)] ??= []).push(credit)
  try {
    const reply = await postTransaction(bank, { id: t.id, ops })
    const decision = reply.body?.decision
    if (reply.status !== 200 || (decision !== 'commit' && decision !== 'abort')) {
      const error = `HTTP ${reply.status}: ${reply.body?.error ?? JSON.stringify(reply.body)}`
      return { ...t, decision: null, votes: {}, reasons: {}, error }
    }
    return { ...t, decision, votes: reply.body.votes, reasons: reply.body.reasons }
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error)
    return { ...t, decision: null, votes: {}, reasons: {}, error: message }
  }
}

/** Runs `plan` with `concurrency` transfers in flight; `onDone` hears of each as it finishes. */
export async function runTransfers(
  bank: Bank,
  plan: readonly Transfer[],
  options: { concurrency: number; onDone?: (outcome: Outcome, done: number) => void },
): Promise<Outcome[]> {
  const outcomes: Outcome[] = new Array(plan.length)
  let next = 0
  let done = 0
  const worker = async () => {
    for (let i = next++; i < plan.length; i = next++) {
      outcomes[i] = await transfer(bank, plan[i]!)
      options.onDone?.(outcomes[i]!, ++done)
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency) }, worker))
  return outcomes
}

/** The committed balance of every account 0..count-1, read from its participant. Throws if an
 * account is missing or not a number. */
export async function readBalances(bank: Bank, count: number): Promise<number[]> {
  const lists = await Promise.all(bank.participants.map(listAccounts))
  return Array.from({ length: count }, (_, i) => {
    const value = lists[homeOf(bank, i)]!.get(i)
    if (typeof value !== 'number') {
      const where = bank.participants[homeOf(bank, i)]
      throw new Error(`account ${i} on ${where} is ${JSON.stringify(value) ?? 'missing'}`)
    }
    return value
  })
}

/** Whether nothing is in flight: the coordinator neither preparing nor delivering, and no
 * participant holding a prepared transaction or a lock. Returns what is still pending. */
export async function pendingWork(bank: Bank): Promise<string[]> {
  const pending: string[] = []
  try {
    const { counts } = await getJson(`${bank.coordinator}/status`)
    if (counts.preparing > 0 || counts.delivering > 0) {
      pending.push(`coordinator: ${counts.preparing} preparing, ${counts.delivering} delivering`)
    }
  } catch (error) {
    pending.push(`coordinator: ${error instanceof Error ? error.message : error}`)
  }
  await Promise.all(
    bank.participants.map(async (url) => {
      try {
        const status = await getJson(`${url}/status`)
        const locks = Object.keys(status.locks ?? {}).length
        if (status.prepared.length > 0 || locks > 0) {
          const inDoubt = JSON.stringify(status.inDoubt.slice(0, 3))
          const held = JSON.stringify(status.locks)
          pending.push(
            `${url}: ${status.prepared.length} prepared, ${locks} locks ` +
              `(prepared ${status.prepared.slice(0, 3).join(' ')}; in doubt ${inDoubt}; ` +
              `locks ${held.slice(0, 300)})`,
          )
        }
      } catch (error) {
        pending.push(`${url}: ${error instanceof Error ? error.message : error}`)
      }
    }),
  )
  return pending
}

/** Polls until nothing is in flight (see `pendingWork`); throws with what is left after `ms`. */
export async function waitSettled(bank: Bank, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms
  for (;;) {
    const pending = await pendingWork(bank)
    if (pending.length === 0) return
    if (Date.now() > deadline) throw new Error(`not settled after ${ms} ms: ${pending.join('; ')}`)
    await Bun.sleep(50)
  }
}

/** Abort reasons with account numbers and transaction ids left out, most frequent first. */
export function topReasons(outcomes: readonly Outcome[], limit = 5): [string, number][] {
  const counts = new Map<string, number>()
  for (const o of outcomes) {
    if (o.decision !== 'abort') continue
    const reasons = Object.values(o.reasons)
    for (const reason of reasons.length > 0 ? reasons : ['(no reason given)']) {
      const general = reason
        .replace(/acct:\d+/g, 'acct:N')
        .replace(/\b(transaction|of) [A-Za-z0-9][A-Za-z0-9._:-]*/g, '$1 T')
      counts.set(general, (counts.get(general) ?? 0) + 1)
    }
  }
  return [...counts].sort((a, b) => b[1] - a[1]).slice(0, limit)
}

/** Three participants and a coordinator service as real processes in a temp directory. */
export async function startCluster(
  participants = 3,
): Promise<{ coordinator: string; stop(): Promise<void> }> {
  const root = mkdtempSync(join(tmpdir(), 'twophase-bank-'))
  const nodes: Node[] = []
  const stop = async () => {
    for (const n of nodes) n.proc.kill('SIGTERM')
    const gone = Promise.all(nodes.map((n) => n.proc.exited))
    if ((await Promise.race([gone, Bun.sleep(5000).then(() => 'late')])) === 'late') {
      for (const n of nodes) n.proc.kill('SIGKILL')
      await gone
    }
    rmSync(root, { recursive: true, force: true })
  }
  try {
    for (let i = 0; i < participants; i++) {
      const dir = join(root, `participant${i}`)
      mkdirSync(dir)
      nodes.push(await spawnParticipant(dir))
    }
    const dir = join(root, 'coordinator')
    mkdirSync(dir)
    const urls = nodes.map((n) => n.url)
    const coordinator = await spawnCoordinatorService(dir, { participants: urls })
    nodes.push(coordinator)
    return { coordinator: coordinator.url, stop }
  } catch (error) {
    await stop()
    throw error
  }
}
