// Proof that a request comes from a node of the cluster, without sending the secret and
// without replay: `Authorization: TwoPhase-HMAC t=<ms>,n=<nonce>,s=<hmac>`, where the HMAC-SHA256
// under the cluster's secret covers the method, the path with its query, the time, the nonce
// and a SHA-256 digest of the body. A proof older or newer than the window is refused, and so
// is a nonce seen within it. Client tokens (`Authorization: Bearer <token>`) open only the
// coordinator's API: they prove nothing a participant would accept.
import { timingSafeEqual } from 'node:crypto'

export const SCHEME = 'TwoPhase-HMAC'
/** How far a proof's time may be from the receiver's clock. */
export const WINDOW_MS = 30_000

function hmac(secret: string, text: string): string {
  return new Bun.CryptoHasher('sha256', secret).update(text).digest('hex')
}

function digest(body: string): string {
  return new Bun.CryptoHasher('sha256').update(body).digest('hex')
}

function canonical(method: string, path: string, t: number, nonce: string, body: string) {
  return `${method.toUpperCase()}\n${path}\n${t}\n${nonce}\n${digest(body)}`
}

/** The Authorization header for a request (`path` with its query, `body` as sent). */
export function proofOf(
  secret: string,
  request: { method: string; path: string; body: string },
  now: number,
): string {
  const nonce = crypto.randomUUID()
  const s = hmac(secret, canonical(request.method, request.path, now, nonce, request.body))
  return `${SCHEME} t=${now},n=${nonce},s=${s}`
}

/** Nonces seen within the window, so that a proof is accepted once. */
export class ReplayGuard {
  readonly #seen = new Map<string, number>()

  /** Records `nonce` (valid until `until`); false if it was already seen. */
  fresh(nonce: string, until: number, now: number): boolean {
    if (this.#seen.size > 10_000) for (const [n, t] of this.#seen) if (t < now) this.#seen.delete(n)
    if (this.#seen.has(nonce)) return false
    this.#seen.set(nonce, until)
    return true
  }
}

/** Why `header` is no proof for this request, or null when it is one. */
export function proofProblem(
  secret: string,
  header: string | undefined,
  request: { method: string; path: string; body: string },
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
  const wanted = hmac(secret, canonical(request.method, request.path, t, nonce, request.body))
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
