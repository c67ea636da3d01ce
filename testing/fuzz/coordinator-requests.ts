// Requests to the coordinator service: POST /transactions valid or almost (ids from a small
// pool, so that most repeat and answer their recorded outcome at once), its operations routed
// by index, name and URL, the lookups, and every other method and path.
import fc from 'fast-check'
import { hostileValue, objectText, q, type Entries, type Text } from './json.ts'
import {
  almost,
  anyMethod,
  bodyOf,
  field,
  get,
  post,
  segment,
  unknownRequest,
  type FuzzRequest,
} from './requests.ts'
import { BAD_TXNS, PARTICIPANT_PATHS, opsText } from './participant-requests.ts'
import { requestJson } from './oracle.ts'

export const ID_POOL = Array.from({ length: 16 }, (_, i) => `c${i}`)

export const coordinatorId: fc.Arbitrary<string> = fc.oneof(
  { weight: 19, arbitrary: fc.constantFrom(...ID_POOL) },
  { weight: 1, arbitrary: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,16}$/) },
)

/** The cluster the requests address: participants by URL, and the names given to them. */
export type Cluster = { participants: readonly string[]; names: Readonly<Record<string, string>> }

/** Ways to name a participant in `ops`: its index (also with a leading zero), its name, its
 * URL, or something that names none. */
function participantKey(cluster: Cluster): fc.Arbitrary<string> {
  const { participants, names } = cluster
  return fc.oneof(
    { weight: 4, arbitrary: fc.nat({ max: Math.max(0, participants.length - 1) }).map(String) },
    { weight: 2, arbitrary: fc.constantFrom(...Object.keys(names), '__proto__', 'toString') },
    { weight: 2, arbitrary: fc.constantFrom(...participants, 'http://127.0.0.1:3') },
    { weight: 1, arbitrary: fc.constantFrom('00', '7', '-1', '1.0', '', ' 0', '1e0') },
  )
}

/** `ops`: one list for all, a list per participant, or something else altogether. */
function routedOps(cluster: Cluster): fc.Arbitrary<Text> {
  const byParticipant = fc
    .array(fc.tuple(participantKey(cluster), opsText), { minLength: 1, maxLength: 3 })
    .map((lists) => objectText(lists))
  return fc.oneof(
    { weight: 6, arbitrary: byParticipant },
    { weight: 2, arbitrary: opsText },
    { weight: 1, arbitrary: fc.constantFrom('{}', '{"0":[]}', 'null', '"ops"', '{"0":{}}') },
  )
}

const optional = (name: string, text: fc.Arbitrary<Text>, freq = 2) =>
  fc.option(
    text.map((t) => [name, t] as const),
    { freq },
  )

function transactionEntries(cluster: Cluster): fc.Arbitrary<Entries> {
  const protocol = field(fc.constantFrom('2pc', '3pc'), [q('4pc'), q('2PC'), '2', 'null'])
  return fc
    .tuple(
      optional('id', field(coordinatorId, BAD_TXNS), 12),
      optional('protocol', protocol),
      optional('ops', routedOps(cluster), 6),
    )
    .map((entries) => entries.filter((e) => e !== null))
}

const COORDINATOR_PATHS = ['/transactions', '/transactions/c1', '/status', '/healthz', '/metrics']

/** Any request to a coordinator service of `cluster`. */
export function coordinatorRequest(cluster: Cluster): fc.Arbitrary<FuzzRequest> {
  const transactions = bodyOf(almost(transactionEntries(cluster)))
  const lookups = get(segment(coordinatorId).map((s) => `/transactions/${s}`))
  return fc.oneof(
    { weight: 40, arbitrary: post('/transactions', transactions) },
    { weight: 3, arbitrary: post('/transactions', hostileValue) },
    { weight: 15, arbitrary: lookups },
    { weight: 3, arbitrary: get(fc.constantFrom('/status', '/healthz', '/metrics', '/healthz?')) },
    { weight: 8, arbitrary: anyMethod([...COORDINATOR_PATHS, ...PARTICIPANT_PATHS]) },
    { weight: 6, arbitrary: unknownRequest },
  )
}

/** The participants a transaction `r` starts would involve, by the service's routing of `ops`
 * (none for any other request). */
export function involved(r: FuzzRequest, cluster: Cluster): Set<string> {
  const found = new Set<string>()
  if (r.method.toUpperCase() !== 'POST' || r.path !== '/transactions') return found
  const ops: unknown = requestJson(r)?.ops
  if (typeof ops !== 'object' || ops === null || Array.isArray(ops)) {
    for (const p of cluster.participants) found.add(p)
    return found
  }
  for (const [key, list] of Object.entries(ops)) {
    const to = routeOf(key, cluster)
    if (to !== undefined && Array.isArray(list) && list.length > 0) found.add(to)
  }
  return found
}

/** Whether `r` would wait on the unreachable participant `url`, which costs time: a
 * transaction whose one participant it is is held until it answers (the service commits it in
 * one phase, which has no prepare timeout: the participant may have committed on its own), and
 * one with others waits out the prepare timeout. The second kind is let through for the ids in
 * `slowIds` only, each of which runs once and then answers its recorded outcome at once. */
export function waitsOn(r: FuzzRequest, cluster: Cluster, url: string, slowIds: readonly string[]) {
  const to = involved(r, cluster)
  if (!to.has(url)) return false
  return to.size === 1 || !slowIds.includes(requestJson(r)?.id)
}

/** The participant an `ops` key names, by the service's rules (index, name, URL). */
function routeOf(key: string, { participants, names }: Cluster): string | undefined {
  const byIndex = /^\d+$/.test(key) ? participants[Number(key)] : undefined
  const byName = Object.hasOwn(names, key) ? names[key] : undefined
  return byIndex ?? byName ?? participants.find((p) => p === key)
}
