// A participant node around a Resource, served over HTTP like `participant.ts`: the same Hono
// app (endpoints, authentication), the same ParticipantNode (log, recovery, in doubt), the
// same start-up lines; the service adds routes of its own beside them.
import { resolve } from 'node:path'
import type { Hono } from 'hono'
import { UsageError } from '../core/errors.ts'
import { createApp } from '../http/participant-app.ts'
import { channelSocket } from '../http/channel.ts'
import { ensureDir } from '../node/batch.ts'
import { ParticipantNode } from '../node/participant-node.ts'
import { httpPorts } from '../node/ports.ts'
import { participantUrl, parseMs, parsePort } from '../cli/args.ts'
import { parseCommand, type Command } from '../cli/flags.ts'
import { writeAddressFile } from '../cli/resolve.ts'
import { credentialsOf, httpOptionsOf, readSecurity, schemeOf } from '../cli/security.ts'
import { serveTlsOf, servingSecurity, trustLine, type Security } from '../cli/security.ts'
import { PARTICIPANT_FLAGS } from '../cli/usage.ts'
import { flagLines } from '../cli/flags.ts'
import { ResourceStore } from './resource-store.ts'
import type { Resource } from './resource.ts'

export type ResourceParticipantOptions = {
  /** Where the participant's log (participant.db), state.txt and lock live. */
  dir: string
  /** 0 (the default): any free port; `url` says which. */
  port?: number
  /** The address to bind: 127.0.0.1 by default. */
  host?: string
  /** How long a transaction stays prepared before the participant asks about its outcome. */
  inDoubtAfterMs?: number
  /** The cluster's secret: every request must prove it (as `--secret-file`). */
  secretFile?: string
  /** PEM files, as `--tls-cert`, `--tls-key` and `--tls-ca`. */
  tls?: { cert?: string; key?: string; ca?: string }
  /** Whom it may ask in doubt (as `--coordinator`, `--peer`); by default whom a prepare names. */
  coordinators?: string[]
  peers?: string[]
  /** Routes of the service itself, added to the participant's app (reads of its data, say). */
  routes?: (app: Hono) => void
  /** Where the start-up lines go; stdout and stderr by default. */
  say?: { out: (line: string) => void; err: (line: string) => void }
}

export type ResourceParticipant = {
  /** The URL it listens on, for the coordinator's `--participant`. */
  url: string
  port: number
  node: ParticipantNode
  app: Hono
  /** Stops listening and closes the log and the resource. */
  stop(): Promise<void>
}

/** Starts a participant that guards `resource` and resolves once it is listening. */
export async function serveResource(
  resource: Resource,
  options: ResourceParticipantOptions,
): Promise<ResourceParticipant> {
  const dir = resolve(options.dir)
  ensureDir(dir)
  const security = servingSecurity(readSecurity(securityValues(options), {}))
  const scheme = schemeOf(security)
  const url = (value: string) => participantUrl(value).replace(/^http:/, `${scheme}:`)
  const trusted = {
    coordinators: (options.coordinators ?? []).map(url),
    peers: (options.peers ?? []).map(url),
  }
  const store = new ResourceStore(resource, dir)
  const ports = httpPorts(httpOptionsOf(security))
  const node = new ParticipantNode(dir, null, {
    store,
    ports,
    trusted,
    ...(options.inDoubtAfterMs === undefined ? {} : { inDoubtAfterMs: options.inDoubtAfterMs }),
  })
  try {
    await node.start()
  } catch (error) {
    await node.close()
    throw error
  }
  try {
    const app = createApp(node, credentialsOf(security))
    options.routes?.(app)
    return await listen(node, app, security, options)
  } catch (error) {
    await node.close() // a port in use, a bad route: the directory's lock goes with it
    throw error
  }
}

async function listen(
  node: ParticipantNode,
  app: Hono,
  security: Security,
  options: ResourceParticipantOptions,
): Promise<ResourceParticipant> {
  await app.request('/healthz') // builds Hono's router before the first prepare
  const tls = serveTlsOf(security)
  const hostname = options.host ?? '127.0.0.1'
  const channels = channelSocket(app)
  const server = Bun.serve({
    port: options.port ?? 0,
    hostname,
    fetch: app.fetch,
    websocket: channels.websocket,
    ...(tls ? { tls } : {}),
  })
  const url = `${schemeOf(security)}://${hostname}:${server.port}`
  writeAddressFile(node.dir, url)
  const say = options.say ?? { out: console.log, err: console.error }
  say.err(trustLine('participant', security))
  say.out(`participant listening on ${url} (dir ${node.dir})`)
  const stop = async () => {
    await channels.closeAll()
    await server.stop()
    await node.close()
  }
  return { url, port: server.port!, node, app, stop }
}

function securityValues(options: ResourceParticipantOptions) {
  return {
    ...(options.secretFile ? { 'secret-file': options.secretFile } : {}),
    ...(options.tls?.cert ? { 'tls-cert': options.tls.cert } : {}),
    ...(options.tls?.key ? { 'tls-key': options.tls.key } : {}),
    ...(options.tls?.ca ? { 'tls-ca': options.tls.ca } : {}),
  }
}

const { store: _store, 'allow-sql': _sql, retain: _r, 'no-views': _v, ...FLAGS } = PARTICIPANT_FLAGS

/** The flags of a resource participant: those of participant.ts that apply to it. */
export const RESOURCE_FLAGS = FLAGS

/** `name`'s flags (`--port`, `--dir`, `--secret-file`, ...) as options; `--help` prints them.
 * `$PORT`, `$HOST` and `$TWOPHASE_SECRET_FILE` count as participant.ts's do. */
export function resourceOptionsFromArgv(
  argv: string[],
  name = 'participant',
  env: Record<string, string | undefined> = Bun.env,
): ResourceParticipantOptions {
  const usage = `${name} [--port PORT] [--host HOST] [--dir DIR] [--in-doubt-after MS] ...`
  const command: Command<typeof FLAGS> = {
    name,
    usage,
    flags: FLAGS,
    help: () => [`usage: ${usage}`, '', 'flags:', ...flagLines(FLAGS)].join('\n'),
  }
  const { values } = parseCommand(argv, command)
  const port = values.port ?? env.PORT ?? '9000' // as participant.ts
  const secretFile = values['secret-file'] ?? env.TWOPHASE_SECRET_FILE
  if (values['tls-key'] && !values['tls-cert']) throw new UsageError('--tls-key needs --tls-cert')
  return {
    dir: values.dir ?? '.',
    port: parsePort(port, 'port'),
    host: values.host ?? env.HOST ?? '0.0.0.0',
    ...(values['in-doubt-after'] === undefined
      ? {}
      : { inDoubtAfterMs: parseMs(values['in-doubt-after'], 'in-doubt-after') }),
    ...(secretFile ? { secretFile } : {}),
    tls: { cert: values['tls-cert'], key: values['tls-key'], ca: values['tls-ca'] },
    coordinators: values.coordinator ?? [],
    peers: values.peer ?? [],
  }
}
