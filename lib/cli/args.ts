// Command-line plumbing both entry scripts share: one-line errors, ports, durations, peers.

import { UsageError } from '../core/errors.ts'
import { FlagError, isParseArgsError, parseArgsMessage } from './flags.ts'

export { UsageError, isParseArgsError }

/** Prints `error` as one line on stderr (a flag error adds the usage line) and exits: 2 for
 * usage errors, 1 otherwise. */
export function fail(error: unknown): never {
  const parseError = isParseArgsError(error)
  const message = parseError
    ? parseArgsMessage(error)
    : error instanceof Error
      ? error.message
      : String(error)
  console.error(`error: ${message.split('\n')[0]}`)
  if (error instanceof FlagError) console.error(error.usage)
  process.exit(error instanceof UsageError || parseError ? 2 : 1)
}

export function parsePort(value: string, name: string): number {
  const port = Number(value)
  if (!/^\d+$/.test(value) || port > 65535) {
    throw new UsageError(`invalid ${name} ${JSON.stringify(value)}: expected a number 0-65535`)
  }
  return port
}

/** A duration flag, always in milliseconds. */
export function parseMs(value: string, name: string, least = 1): number {
  const ms = Number(value)
  if (!/^\d+$/.test(value) || ms < least) {
    const bound = least === 1 ? '> 0' : `>= ${least}`
    throw new UsageError(
      `invalid --${name} ${JSON.stringify(value)}: expected milliseconds ${bound}`,
    )
  }
  return ms
}

/** A count flag (`--retain 10000`): a whole number, at least `least`. */
export function parseCount(value: string, name: string, least = 0): number {
  const n = Number(value)
  if (!/^\d+$/.test(value) || n < least || !Number.isSafeInteger(n)) {
    throw new UsageError(`invalid --${name} ${JSON.stringify(value)}: expected a whole number`)
  }
  return n
}

export type History = { retain?: number; view?: false }

/** What --retain and --no-views ask of a node (lib/node/retention.ts). */
export function historyOf(values: { retain?: string; 'no-views'?: boolean }): History {
  return {
    ...(values.retain !== undefined ? { retain: parseCount(values.retain, 'retain') } : {}),
    ...(values['no-views'] ? { view: false as const } : {}),
  }
}

/** A participant address as the base URL the coordinator talks to: `host:port` or a URL. */
export function participantUrl(value: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`
  let url: URL
  try {
    url = new URL(withScheme)
  } catch {
    throw new UsageError(
      `invalid participant ${JSON.stringify(value)}: expected host:port or http://host:port`,
    )
  }
  const badScheme = url.protocol !== 'http:' && url.protocol !== 'https:'
  if (badScheme || url.port === '' || url.search !== '' || url.hash !== '') {
    throw new UsageError(
      `invalid participant ${JSON.stringify(value)}: expected host:port or http://host:port`,
    )
  }
  return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, '')}`
}

/** `--participant [NAME=]host:port` or `[NAME=]URL`: the URL, and the name if one was given. */
export function namedParticipant(value: string): { name: string | null; url: string } {
  const match = /^([A-Za-z][A-Za-z0-9_-]*)=(.+)$/.exec(value)
  return match
    ? { name: match[1]!, url: participantUrl(match[2]!) }
    : { name: null, url: participantUrl(value) }
}

/** Participants from `PEER_PARTICIPANT<N>_HOST` / `_PORT`, N = 0, 1, 2, … in numeric order. */
export function participantsFromEnv(env: Record<string, string | undefined>): string[] {
  const indexes = new Set<number>()
  for (const key of Object.keys(env)) {
    const match = /^PEER_PARTICIPANT(\d+)_(HOST|PORT)$/.exec(key)
    if (match) indexes.add(Number(match[1]))
  }
  return [...indexes]
    .sort((a, b) => a - b)
    .map((n) => {
      const host = env[`PEER_PARTICIPANT${n}_HOST`]
      const port = env[`PEER_PARTICIPANT${n}_PORT`]
      if (!host || !port) {
        throw new UsageError(
          `PEER_PARTICIPANT${n}_HOST and PEER_PARTICIPANT${n}_PORT must both be set`,
        )
      }
      const hostPart = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host
      return participantUrl(`${hostPart}:${parsePort(port, `PEER_PARTICIPANT${n}_PORT`)}`)
    })
}

const CLIENT_COMMANDS = ['start', 'submit', 'show', 'status', 'get', 'help'] as const

/** Whether `coordinator.ts WORD …` is a client command (client.ts) rather than batch mode. */
export function isClientCommand(word: string | undefined): boolean {
  return (CLIENT_COMMANDS as readonly (string | undefined)[]).includes(word)
}
