// The bank workload that the example (examples/bank.ts), the tests and the chaos run share:
// accounts spread over the coordinator's participants (account i lives on participant
// i % n as key `acct:<i>`), random concurrent transfers, each ONE transaction through the
// coordinator service, and a check that no money was made or lost on the way.
import { randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawnCoordinatorService, spawnParticipant, type Node } from './nodes.ts'
import { makeCerts, tlsFlags } from './tls.ts'
import { mulberry32 } from '../lib/core/index.ts'
import { requestHeaders } from '../lib/node/ports.ts'

/** What the bank's requests carry to a secured cluster; none of it for an open one. */
export type Auth = {
  /** The cluster's secret: each request carries its proof (lib/wire/auth.ts), signed over the
   * body exactly as sent. Reads of the participants (GET /kv, /status) need it. */
  secret?: string | null
  /** A client token (`Authorization: Bearer`), sent to the coordinator instead of the proof:
   * it opens the coordinator's API and nothing on a participant. */
  token?: string | null
  /** TLS: the CA to trust, and the client certificate and key for mutual TLS (PEM texts). */
  tls?: { ca?: string; cert?: string; key?: string } | null
}

export type Protocol = '2pc' | '3pc'

/** A coordinator service and its participants, in the coordinator's order (index = ops key),
 * what requests to them carry, and how its transactions run: in two-phase commit (the
 * service's default, when `protocol` is absent) or in three-phase commit. */
export type Bank = {
  coordinator: string
  participants: readonly string[]
  auth?: Auth
  protocol?: Protocol
}

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

/** One request of the bank to `url`, with `text` as its body (none for GET): to the coordinator
 * with the client token when there is one, else (and to every participant) with the proof of
 * the secret when there is one; over TLS with `auth.tls`. */
export function send(
  bank: Pick<Bank, 'coordinator' | 'auth'>,
  method: 'GET' | 'POST',
  url: string,
  options: { text?: string; timeoutMs?: number } = {},
): Promise<Response> {
  const auth = bank.auth ?? {}
  const text = options.text ?? ''
  const token = auth.token && url.startsWith(`${bank.coordinator}/`) ? auth.token : null
  const headers = requestHeaders(method, url, text, token ? null : auth.secret)
  if (token) headers.authorization = `Bearer ${token}`
  return fetch(url, {
    method,
    headers,
    ...(method === 'POST' ? { body: text } : {}),
    ...(auth.tls ? { tls: auth.tls } : {}),
    ...(options.timeoutMs ? { signal: AbortSignal.timeout(options.timeoutMs) } : {}),
  })
}

/** GETs JSON; an error answer throws, a 401 saying what the bank lacked. */
export async function getJson(bank: Pick<Bank, 'coordinator' | 'auth'>, url: string) {
  const response = await send(bank, 'GET', url, { timeoutMs: 5000 })
  if (!response.ok) {
    const text = await response.text()
    throw new Error(`GET ${url}: HTTP ${response.status} ${text}${lacking(bank, url, response)}`)
  }
  return (await response.json()) as any
}

function lacking(bank: Pick<Bank, 'coordinator' | 'auth'>, url: string, response: Response) {
  if (response.status !== 401 || bank.auth?.secret) return ''
  if (bank.auth?.token && !url.startsWith(`${bank.coordinator}/`)) {
    return " (a participant's reads need the secret: a client token opens only the coordinator)"
  }
  return ' (the cluster wants the proof of its secret or a client token)'
}

/** POST /transactions, in the bank's protocol: a reply that shows the transaction ran in
 * another one (a coordinator that knows no three-phase commit) throws. */
async function postTransaction(
  bank: Bank,
  body: Record<string, unknown>,
): Promise<{ status: number; body: any }> {
  const text = JSON.stringify(bank.protocol ? { ...body, protocol: bank.protocol } : body)
  const response = await send(bank, 'POST', `${bank.coordinator}/transactions`, { text })
  const reply: any = await response.json().catch(() => null)
  if (response.status === 200 || response.status === 202) checkProtocol(bank, reply)
  return { status: response.status, body: reply }
}

/** Throws when `answer` (of POST or GET /transactions) ran in another protocol than the bank's. */
function checkProtocol(bank: Bank, answer: { id?: unknown; protocol?: unknown } | null): void {
  if (bank.protocol === undefined || answer?.protocol === bank.protocol) return
  const ran =
    answer?.protocol === undefined ? 'a protocol it does not name' : String(answer.protocol)
  throw new Error(
    `the coordinator ${bank.coordinator} ran ${String(answer?.id)} in ${ran}, ` +
      `where ${bank.protocol} was asked for`,
  )
}

/** The bank behind a running coordinator service: its participants from `GET /status`. */
export async function connect(coordinator: string, auth?: Auth): Promise<Bank> {
  const url = coordinator.replace(/\/+$/, '')
  const status = await getJson({ coordinator: url, auth }, `${url}/status`)
  const participants = (status.participants as { url: string }[]).map((p) => p.url)
  if (participants.length === 0) throw new Error(`${url} has no participants`)
  return { coordinator: url, participants, ...(auth ? { auth } : {}) }
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
      const existing = new Set((await listAccounts(bank, url)).keys())
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
async function listAccounts(bank: Bank, url: string): Promise<Map<number, unknown>> {
  const { items } = await getJson(bank, `${url}/kv?prefix=acct:&limit=10000`)
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
    // 202: not decided within the prepare timeout (a lone participant that cannot be reached
    // is asked until it answers, as it may have committed): ask until it is decided.
    if (reply.status === 202) return await decidedLater(bank, t)
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

/** The outcome of a transfer the coordinator is still deciding, once it has decided. */
async function decidedLater(bank: Bank, t: Transfer): Promise<Outcome> {
  const deadline = Date.now() + 60_000
  while (Date.now() < deadline) {
    const body = await getJson(bank, `${bank.coordinator}/transactions/${t.id}`)
    checkProtocol(bank, body)
    if (body.decision === 'commit' || body.decision === 'abort') {
      return { ...t, decision: body.decision, votes: body.votes ?? {}, reasons: body.reasons ?? {} }
    }
    await Bun.sleep(100)
  }
  return { ...t, decision: null, votes: {}, reasons: {}, error: 'still undecided after 60 s' }
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
  const lists = await Promise.all(bank.participants.map((url) => listAccounts(bank, url)))
  return Array.from({ length: count }, (_, i) => {
    const value = lists[homeOf(bank, i)]!.get(i)
    if (typeof value !== 'number') {
      const where = bank.participants[homeOf(bank, i)]
      throw new Error(`account ${i} on ${where} is ${JSON.stringify(value) ?? 'missing'}`)
    }
    return value
  })
}

/** Whether nothing is in flight: the coordinator neither preparing (nor precommitting) nor
 * delivering, and no participant holding a prepared (or precommitted) transaction or a lock.
 * Returns what is still pending. */
export async function pendingWork(bank: Bank): Promise<string[]> {
  const pending: string[] = []
  try {
    const { counts } = await getJson(bank, `${bank.coordinator}/status`)
    if (counts.preparing > 0 || counts.delivering > 0) {
      pending.push(`coordinator: ${counts.preparing} preparing, ${counts.delivering} delivering`)
    }
  } catch (error) {
    pending.push(`coordinator: ${error instanceof Error ? error.message : error}`)
  }
  await Promise.all(
    bank.participants.map(async (url) => {
      try {
        const status = await getJson(bank, `${url}/status`)
        const locks = Object.keys(status.locks ?? {}).length
        // Three-phase commit: counts has these keys while one is precommitted or preaborted.
        const pre = (status.counts?.precommitted ?? 0) + (status.counts?.preaborted ?? 0)
        if (status.prepared.length > 0 || locks > 0 || pre > 0) {
          const inDoubt = JSON.stringify(status.inDoubt.slice(0, 3))
          const held = JSON.stringify(status.locks)
          const three = pre > 0 ? `${pre} precommitted or preaborted, ` : ''
          pending.push(
            `${url}: ${status.prepared.length} prepared, ${three}${locks} locks ` +
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

export type Security = {
  /** A fresh cluster secret on every node (`--secret-file`). */
  secret?: boolean
  /** Client tokens on the coordinator service (`--client-tokens-file`). */
  tokens?: boolean
  /** Mutual TLS on every node, with a throwaway CA and certificate (testing/tls.ts). */
  tls?: boolean
}

/** The keys of a secured cluster, written into `dir`: the flags its nodes take, and what the
 * requests to it carry. */
export type ClusterKeys = {
  /** Every node's: `--secret-file` and the TLS flags. */
  nodeFlags: string[]
  /** `coordinator.ts serve`'s besides: `--client-tokens-file`. */
  serveFlags: string[]
  /** What a node's requests carry, the secret and TLS: what reads of participants need. */
  nodeAuth: Auth
  /** A client's: the token (else the secret) and TLS. */
  clientAuth: Auth
}

/** Writes a fresh secret, a client token and a CA with a node certificate into `dir`, as
 * `security` asks. */
export function makeKeys(dir: string, security: Security): ClusterKeys {
  if (security.secret || security.tokens || security.tls) mkdirSync(dir, { recursive: true })
  const secret = security.secret ? randomBytes(32).toString('hex') : null
  const token = security.tokens ? `bank-client-${randomBytes(16).toString('hex')}` : null
  const certs = security.tls ? makeCerts(dir) : null
  const pem = (path: string) => readFileSync(path, 'utf8')
  const tls = certs ? { ca: pem(certs.ca), cert: pem(certs.cert), key: pem(certs.key) } : null
  return {
    nodeFlags: [
      ...(secret ? ['--secret-file', writeKey(dir, 'secret', secret)] : []),
      ...(certs ? tlsFlags(certs) : []),
    ],
    serveFlags: token ? ['--client-tokens-file', writeKey(dir, 'client-tokens', token)] : [],
    nodeAuth: { secret, tls },
    clientAuth: token ? { token, tls } : { secret, tls },
  }
}

function writeKey(dir: string, name: string, text: string): string {
  const path = join(dir, name)
  writeFileSync(path, `${text}\n`, { mode: 0o600 })
  return path
}

export type LocalCluster = {
  coordinator: string
  /** What the bank's requests carry: the secret (or none), the token (or none) and TLS. */
  auth: Auth
  /** Where the keys are: `secret`, `client-tokens` (also good as a `--token-file`), and
   * `ca.pem`, `cert.pem`, `key.pem`. */
  keysDir: string
  stop(): Promise<void>
}

/** Participants (3 by default) and a coordinator service as real processes in a temp
 * directory, secured as `options` says (open by default). */
export async function startCluster(
  options: Security & { participants?: number } = {},
): Promise<LocalCluster> {
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
    const keysDir = join(root, 'keys')
    const keys = makeKeys(keysDir, options)
    for (let i = 0; i < (options.participants ?? 3); i++) {
      const dir = join(root, `participant${i}`)
      mkdirSync(dir)
      nodes.push(await spawnParticipant(dir, { args: keys.nodeFlags }))
    }
    const dir = join(root, 'coordinator')
    mkdirSync(dir)
    const urls = nodes.map((n) => n.url)
    const args = [...keys.nodeFlags, ...keys.serveFlags]
    const coordinator = await spawnCoordinatorService(dir, { participants: urls, args })
    nodes.push(coordinator)
    const auth = { ...keys.nodeAuth, token: keys.clientAuth.token ?? null }
    return { coordinator: coordinator.url, auth, keysDir, stop }
  } catch (error) {
    await stop()
    throw error
  }
}
