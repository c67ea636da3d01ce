// The tweet store's data: every tweet is one key (`tweet:<id>`) on every worker, written by one
// two-phase transaction through the coordinator service, so both workers hold the same tweets.
// A worker locks a tweet's key while a transaction that writes it is prepared: a second writer
// of the same tweet is voted down, and its write is refused as a conflict.
import { requestHeaders, type HttpOptions } from '../../lib/node/ports.ts'

export type Tweet = {
  id: string
  author: string
  content: string
  created: string
  updated: string | null
}

/** Why a write did not commit, as the API answers it. */
export class WriteRefused extends Error {
  constructor(
    readonly status: 404 | 409 | 503,
    message: string,
  ) {
    super(message)
  }
}

const PREFIX = 'tweet:'
const READ_MS = 2000

export class TweetStore {
  /** `http`: the cluster's secret, which every request to a node then proves, and TLS. */
  constructor(
    readonly coordinator: string,
    readonly workers: readonly string[],
    readonly writeMs = 30_000,
    readonly http: HttpOptions = {},
  ) {}

  /** What a request of `body` to `url` carries: the proof of the secret, and TLS. */
  #init(method: 'GET' | 'POST', url: string, body: string, ms: number): RequestInit {
    const tls = this.http.tls ? { tls: this.http.tls } : {}
    return {
      method,
      headers: requestHeaders(method, url, body, this.http.secret),
      ...(method === 'POST' ? { body } : {}),
      ...tls,
      signal: AbortSignal.timeout(ms),
    }
  }

  /** Every tweet, newest first, from the first worker that answers: committed data only (a
   * worker shows a write once it has committed it). */
  async list(): Promise<Tweet[]> {
    const body = await this.#read(`/kv?prefix=${PREFIX}&limit=10000`)
    const items = (body as { items: { value: Tweet }[] }).items
    return items.map((i) => i.value).sort((a, b) => b.created.localeCompare(a.created))
  }

  /** One tweet as committed, or null. */
  async get(id: string): Promise<Tweet | null> {
    const body = await this.#read(`/kv/${encodeURIComponent(PREFIX + id)}`, true)
    return body === null ? null : ((body as { value: Tweet }).value ?? null)
  }

  async #read(path: string, absentOk = false): Promise<unknown> {
    for (const worker of this.workers) {
      try {
        const url = worker + path
        const response = await fetch(url, this.#init('GET', url, '', READ_MS))
        if (absentOk && response.status === 404) return null
        if (response.ok) return await response.json()
      } catch {} // that worker is down: the next one has the same tweets
    }
    throw new WriteRefused(503, 'no worker answered: the tweets cannot be read now')
  }

  insert(tweet: Tweet): Promise<void> {
    return this.#write(tweet.id, [{ op: 'insert', key: PREFIX + tweet.id, value: tweet }])
  }

  /** Replaces `before` (as read) by `after`: the check makes a write in between a conflict. */
  update(before: Tweet, after: Tweet): Promise<void> {
    const key = PREFIX + before.id
    const check = { op: 'check', key, equals: before }
    return this.#write(before.id, [check, { op: 'set', key, value: after }])
  }

  remove(before: Tweet): Promise<void> {
    const key = PREFIX + before.id
    return this.#write(before.id, [
      { op: 'check', key, equals: before },
      { op: 'delete', key },
    ])
  }

  /** One transaction on every worker; resolves once committed, else throws WriteRefused. */
  async #write(id: string, ops: object[]): Promise<void> {
    const txn = `tweet-${id}-${crypto.randomUUID().slice(0, 8)}`
    let outcome: Outcome
    try {
      const url = `${this.coordinator}/transactions`
      const body = JSON.stringify({ id: txn, ops })
      const response = await fetch(url, this.#init('POST', url, body, this.writeMs))
      outcome = (await response.json()) as Outcome
    } catch {
      throw new WriteRefused(503, 'the coordinator did not answer: try again later')
    }
    if (outcome.decision === 'commit') return
    throw refusalOf(id, outcome)
  }
}

type Outcome = {
  decision?: string | null
  votes?: Record<string, string | null>
  reasons?: Record<string, string>
  error?: string
}

/** Why the transaction aborted: a lock or a changed tweet (another writer), or a worker that
 * did not vote. */
function refusalOf(id: string, outcome: Outcome): WriteRefused {
  const reasons = Object.values(outcome.reasons ?? {})
  const conflict = reasons.some((r) => /is locked by transaction|^check failed/.test(r))
  if (conflict) return new WriteRefused(409, `tweet ${id} is being modified, try again`)
  const silent = Object.entries(outcome.votes ?? {}).filter(([, vote]) => vote === null)
  if (silent.length > 0 || outcome.decision === undefined) {
    const who = silent.map(([url]) => url).join(', ')
    return new WriteRefused(503, `a worker is unavailable${who ? ` (${who})` : ''}: try again`)
  }
  return new WriteRefused(409, `not written: ${reasons.join('; ') || 'aborted'}`)
}
