// Who may talk to a node. With a cluster secret, every request but GET /healthz must carry proof
// of it (lib/wire/auth.ts), or, on the routes a node opens to clients, one of its client tokens;
// anything else is a 401 that changes nothing. Without a secret a node accepts anyone, and says
// so once at start-up (the classic exercise runs that way).
import type { Context, Hono } from 'hono'
import { ReplayGuard, hasClientToken, proofProblem, type Signed } from '../wire/auth.ts'
import { bodyText } from './json-errors.ts'

export type Credentials = {
  /** The cluster's shared secret (`--secret-file`); null: no authentication. */
  secret: string | null
  /** Tokens that open the routes `clientRoute` admits (`serve --client-tokens-file`). */
  clientTokens?: readonly string[]
}

export const OPEN: Credentials = { secret: null }

/** The requests a client token admitted (not the cluster secret's proof): a route may refuse
 * them what only the cluster may do, such as `sql` operations. */
export const admittedByToken = new WeakSet<Request>()

/** Why a request with this Authorization `header` is refused, or null: the cluster secret's
 * proof, checked against one replay guard (so a proof is used once, whichever way it came). */
export type Gate = (request: Signed, header: string | undefined) => string | null

/** Installs authentication on `app`, after the JSON error handling and before its routes; the
 * gate it checks proofs with (null without a secret), for requests that come another way (a
 * participant's channel). */
export function useAuth(
  app: Hono,
  credentials: Credentials,
  now: () => number,
  clientRoute: (c: Context) => boolean = () => false,
): Gate | null {
  const { secret } = credentials
  if (secret === null) return null
  const guard = new ReplayGuard(now())
  const gate: Gate = (request, header) => proofProblem(secret, header, request, now(), guard)
  const tokens = credentials.clientTokens ?? []
  app.use(async (c, next) => {
    if (c.req.method === 'GET' && c.req.path === '/healthz') return next()
    const header = c.req.header('authorization')
    if (tokens.length > 0 && clientRoute(c) && hasClientToken(header, tokens)) {
      admittedByToken.add(c.req.raw)
      return next()
    }
    const url = new URL(c.req.url)
    const body = c.req.method === 'GET' || c.req.method === 'HEAD' ? '' : await bodyText(c)
    const problem = gate({ method: c.req.method, path: url.pathname + url.search, body }, header)
    if (problem !== null) return c.json({ error: `unauthorized: ${problem}` }, 401)
    return next()
  })
  return gate
}
