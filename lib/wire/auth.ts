// Proof that a request comes from a node of the cluster, without sending the secret and
// without replay: `Authorization: TwoPhase-HMAC t=<ms>,n=<nonce>,s=<hmac>`, where the HMAC-SHA256
// under the cluster's secret covers the method, the path with its query, the time, the nonce and
// a SHA-256 digest of the body. It does not name the node it is for: an observer on the path
// could replay a captured request to another node within the window, and could alter answers,
// which are not signed. TLS is what keeps an observer out; the secret keeps out everyone else.
// A proof older or newer than the window is refused, and so is a nonce seen within it. Client
// tokens (`Authorization: Bearer <token>`) open only the coordinator's API: they prove nothing a
// participant would accept.
import { timingSafeEqual } from 'node:crypto'

export const SCHEME = 'TwoPhase-HMAC'
/** How far a proof's time may be from the receiver's clock. */
export const WINDOW_MS = 30_000

function hmac(secret: string, text: string): string {
  return new Bun.CryptoHasher('sha256', secret).update(text).digest('hex')
}

function digest(body: string): string {
  // Bun.SHA256.hash, not a CryptoHasher: the same digest without an object per call.
  return Bun.SHA256.hash(body, 'hex')
}

/** What a request is, for its proof. */
export type Signed = { method: string; path: string; body: string }

function canonical(r: Signed, t: number, nonce: string) {
  return `${r.method.toUpperCase()}\n${r.path}\n${t}\n${nonce}\n${digest(r.body)}`
}

/** The Authorization header for a request (`path` with its query, `body` as sent). */
export function proofOf(secret: string, request: Signed, now: number): string {
  const nonce = crypto.randomUUID()
  const s = hmac(secret, canonical(request, now, nonce))
  return `${SCHEME} t=${now},n=${nonce},s=${s}`
}

/** Nonces seen within the window, so that a proof is accepted once. */
export class ReplayGuard {
  readonly #seen = new Map<string, number>()

  /** The nonces seen before a restart are lost with it: a proof made before the node started
   * is refused, so none of them can be replayed to the new process. */
  constructor(readonly startedAt: number) {}

  /** Records `nonce` (valid until `until`); false if it was already seen. */
  fresh(nonce: string, until: number, now: number): boolean {
    // Nonces arrive roughly in time order: the expired ones are at the front of the map.
    for (const [n, t] of this.#seen) {
      if (t >= now) break
      this.#seen.delete(n)
    }
    if (this.#seen.has(nonce)) return false
    this.#seen.set(nonce, until)
    return true
  }
}

/** Why `header` is no proof for this request, or null when it is one. */
export function proofProblem(
  secret: string,
  header: string | undefined,
  request: Signed,
  now: number,
  guard: ReplayGuard,
): string | null {
  const match = /^TwoPhase-HMAC t=(\d{1,16}),n=([0-9a-f-]{8,64}),s=([0-9a-f]{64})$/.exec(
    header ?? '',
  )
  if (!match) return `no proof of the cluster's secret (an Authorization: ${SCHEME} header)`
  const [, tText, nonce, given] = match as unknown as [string, string, string, string]
  const t = Number(tText)
  if (Math.abs(now - t) > WINDOW_MS) return 'the proof is too old or too new (check the clocks)'
  if (t < guard.startedAt) return 'the proof was made before this node started'
  const wanted = hmac(secret, canonical(request, t, nonce))
  if (!timingSafeEqual(Buffer.from(given, 'hex'), Buffer.from(wanted, 'hex'))) {
    return 'the proof does not match: a wrong secret, or a request changed on the way'
  }
  if (!guard.fresh(nonce, t + WINDOW_MS, now)) return 'the proof was already used (a replay)'
  return null
}

/** Whether `header` carries one of the client tokens (compared in constant time). */
export function hasClientToken(header: string | undefined, tokens: readonly string[]): boolean {
  const match = /^Bearer (\S{16,512})$/.exec(header ?? '')
  if (!match) return false
  const given = Buffer.from(match[1]!)
  let found = false
  for (const token of tokens) {
    const wanted = Buffer.from(token)
    if (wanted.length === given.length && timingSafeEqual(wanted, given)) found = true
  }
  return found
}
