// How a node opens its pools of PostgreSQL connections.
import { SQL } from 'bun'

/** How long a new connection may take to be ready, in seconds. Bun's default is 30, and a
 * server that accepts a connection and drops it before its first answer (one killed with
 * connections in its backlog, or a proxy in front of one that is down) fails the query waiting
 * for it only then: so long a stall would hold a participant's prepare, or a coordinator's lease
 * renewal, far beyond every timeout around them. A connection over a network is ready in
 * milliseconds. */
export const CONNECT_TIMEOUT_S = 5

/** A pool of at most `max` connections to `url`, each set up with `connection`'s settings. */
export function pgPool(url: string, max: number, connection?: Record<string, string | number>) {
  return new SQL({
    url,
    max,
    connectionTimeout: CONNECT_TIMEOUT_S,
    ...(connection && { connection }),
  })
}
