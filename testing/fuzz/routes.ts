// Each endpoint's 200 as docs/http-api.md documents it, for the oracle: the participant's and
// the coordinator service's.
import {
  isCount,
  isObject,
  isString,
  lastSegment,
  oneOf,
  orNull,
  requestJson,
  shape,
  stringMap,
  type Facts,
  wantsJson,
  type Route,
} from './oracle.ts'
import type { FuzzRequest } from './requests.ts'

const VOTES = ['yes', 'no', 'read-only']
const STATES = ['unknown', 'prepared', 'precommitted', 'preaborted', 'committed', 'aborted']

/** The answer is about the transaction the request named, and the node agrees with it now. */
function sameTxn(body: any, request: FuzzRequest, facts: Facts, state?: string): string | null {
  const txn = requestJson(request)?.txn
  if (body.txn !== txn) return `txn ${JSON.stringify(body.txn)} for ${JSON.stringify(txn)}`
  const now = facts.txnState?.(txn)
  if (state !== undefined && now !== undefined && now !== state) return `but the node has ${now}`
  return null
}

function outcome(state: string) {
  return (body: any, request: FuzzRequest, facts: Facts) =>
    shape(body, { txn: isString, state: oneOf(state) }) ?? sameTxn(body, request, facts, state)
}

function batchReplies(body: any, request: FuzzRequest): string | null {
  const wrong = shape(body, { replies: Array.isArray })
  if (wrong !== null) return wrong
  const sent = requestJson(request)?.messages
  if (body.replies.length !== sent.length) return `${body.replies.length} replies to ${sent.length}`
  for (const item of body.replies) {
    if (!isObject(item) || !Number.isInteger(item.status) || !isObject(item.body)) {
      return `reply ${JSON.stringify(item)}`
    }
    if (item.status >= 500) return `a batch item answered ${item.status}`
    const ok = item.status === 200 ? isString(item.body.txn) : isString(item.body.error)
    if (!ok || (item.status !== 200 && (item.status < 400 || item.status > 499))) {
      return `reply ${JSON.stringify(item)}`
    }
  }
  return null
}

function kvItems(body: any, request: FuzzRequest): string | null {
  const wrong = shape(body, { items: Array.isArray })
  if (wrong !== null) return wrong
  const query = new URL(`http://localhost${request.path}`).searchParams
  const prefix = query.get('prefix') ?? ''
  const limit = Number(query.get('limit') ?? 100)
  const keys: string[] = body.items.map((i: any) => i?.key)
  if (keys.length > limit) return `${keys.length} items for limit ${limit}`
  if (!keys.every((k) => isString(k) && k.startsWith(prefix))) return `keys ${keys} for ${prefix}`
  // In the order of their UTF-8 bytes, which is that of code points (not of JavaScript's `<`).
  const inOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b)) < 0
  if (keys.some((k, i) => i > 0 && !inOrder(keys[i - 1]!, k))) return `keys out of order: ${keys}`
  return null
}

function txnView(body: any, request: FuzzRequest, facts: Facts): string | null {
  const wrong = shape(body, {
    txn: isString,
    state: oneOf(...STATES),
    vote: orNull(oneOf(...VOTES)),
    reason: orNull(isString),
    heuristic: oneOf(true, false),
  })
  if (wrong !== null) return wrong
  const named = lastSegment(request)
  if (named !== null && body.txn !== named) return `txn ${body.txn} for ${named}`
  const now = facts.txnState?.(body.txn)
  return now === undefined || now === body.state ? null : `state ${body.state}, node has ${now}`
}

/** Three-phase: precommit or preabort moved it (in the attempt asked), or it had decided. */
function moved(body: any, request: FuzzRequest, facts: Facts): string | null {
  const states = ['precommitted', 'preaborted', 'committed', 'aborted']
  return shape(body, { txn: isString, state: oneOf(...states) }) ?? sameTxn(body, request, facts)
}

/** Three-phase: a state report for the attempt asked. */
function stateReport(body: any, request: FuzzRequest): string | null {
  const wrong = shape(body, { txn: isString, attempt: isCount, report: isObject })
  if (wrong !== null) return wrong
  if (body.attempt !== requestJson(request)?.attempt) return `attempt ${body.attempt}`
  return shape(body.report, { state: oneOf(...STATES), lastElected: isCount })
}

const healthz = (body: any) => shape(body, { ok: oneOf(true) })
const metrics = (body: any) => shape(body, { flushes: isCount, requests: isCount })
/** Prometheus's text format (the counters' JSON with `Accept: application/json`). */
function exposition(text: string, request: FuzzRequest): string | null {
  if (wantsJson(request)) return jsonProblem(text, metrics)
  return text.includes('# TYPE twophase_transactions_total counter') ? null : 'no twophase metrics'
}

function jsonProblem(text: string, check: (body: any) => string | null): string | null {
  try {
    return check(JSON.parse(text))
  } catch {
    return `not JSON: ${JSON.stringify(text.slice(0, 200))}`
  }
}

const html = (text: string) => (text.startsWith('<!doctype html>') ? null : 'not a page')

export const PARTICIPANT_ROUTES: readonly Route[] = [
  {
    method: 'POST',
    path: /^\/prepare$/,
    text: VOTES,
    check: (body, request, facts) =>
      shape(body, { txn: isString, vote: oneOf(...VOTES), reason: orNull(isString) }) ??
      sameTxn(body, request, facts),
  },
  { method: 'POST', path: /^\/commit$/, text: ['committed'], check: outcome('committed') },
  { method: 'POST', path: /^\/abort$/, text: ['aborted'], check: outcome('aborted') },
  { method: 'POST', path: /^\/batch$/, check: batchReplies },
  { method: 'POST', path: /^\/(precommit|preabort)$/, check: moved },
  { method: 'POST', path: /^\/state-request$/, check: stateReport },
  {
    method: 'POST',
    path: /^\/decision-request$/,
    check: (body, request, facts) =>
      shape(body, { txn: isString, state: oneOf(...STATES) }) ?? sameTxn(body, request, facts),
  },
  {
    method: 'POST',
    path: /^\/resolve$/,
    check: (body, request, facts) =>
      outcome(requestJson(request)?.decision === 'commit' ? 'committed' : 'aborted')(
        body,
        request,
        facts,
      ),
  },
  { method: 'GET', path: /^\/transactions\/[^/]+$/, check: txnView },
  {
    method: 'GET',
    path: /^\/kv\/[^/]+$/,
    check: (body, request) => {
      const wrong = shape(body, { key: isString }) ?? ('value' in body ? null : 'no value')
      const named = lastSegment(request)
      return wrong ?? (named === null || body.key === named ? null : `key for ${named}`)
    },
  },
  { method: 'GET', path: /^\/kv$/, check: kvItems },
  {
    method: 'GET',
    path: /^\/status$/,
    check: (body) =>
      shape(body, {
        role: oneOf('participant'),
        dir: isString,
        counts: stringMap(isCount),
        prepared: Array.isArray,
        inDoubt: Array.isArray,
        heuristic: Array.isArray,
        locks: stringMap(isString),
      }),
  },
  { method: 'GET', path: /^\/metrics$/, check: metrics, plain: exposition },
  { method: 'GET', path: /^\/metrics\.json$/, check: metrics },
  { method: 'GET', path: /^\/healthz$/, check: healthz },
]

function transactionOutcome(body: any, request: FuzzRequest): string | null {
  const wrong = shape(body, {
    id: isString,
    decision: oneOf('commit', 'abort'),
    votes: stringMap(orNull(oneOf(...VOTES))),
    reasons: stringMap(isString),
    acknowledged: oneOf(true, false),
  })
  if (wrong !== null) return wrong
  const id = requestJson(request)?.id
  return id === undefined || body.id === id ? null : `id ${body.id} for ${JSON.stringify(id)}`
}

function transactionView(body: any, request: FuzzRequest): string | null {
  const named = lastSegment(request)
  if (named !== null && body?.id !== named) return `id ${body?.id} for ${named}`
  if (body?.state === 'unknown' && Object.keys(body).length === 2) return null
  return shape(body, {
    id: isString,
    decision: orNull(oneOf('commit', 'abort')),
    votes: stringMap(orNull(oneOf(...VOTES))),
    reasons: stringMap(isString),
    acknowledged: oneOf(true, false),
    state: oneOf('preparing', 'commit', 'abort', 'unknown'),
    phase: oneOf('preparing', 'precommitting', 'deciding', 'done'),
  })
}

export const COORDINATOR_ROUTES: readonly Route[] = [
  { method: 'POST', path: /^\/transactions$/, check: transactionOutcome },
  { method: 'GET', path: /^\/transactions\/[^/]+$/, check: transactionView },
  { method: 'GET', path: /^\/$/, check: () => null, plain: html },
  {
    method: 'GET',
    path: /^\/status$/,
    check: (body) =>
      shape(body, {
        role: oneOf('coordinator'),
        participants: (v) => Array.isArray(v) && v.every((p) => isString(p?.url)),
        counts: stringMap(isCount),
        delivering: Array.isArray,
      }),
  },
  { method: 'GET', path: /^\/metrics$/, check: metrics, plain: exposition },
  { method: 'GET', path: /^\/metrics\.json$/, check: metrics },
  { method: 'GET', path: /^\/healthz$/, check: healthz },
]
