// Command-line plumbing (lib/cli/args.ts): what each flag and variable accepts, and the exact
// one-line error (a UsageError, exit status 2) for what it refuses.
import { describe, expect, test } from 'bun:test'
import {
  isClientCommand,
  namedParticipant,
  parseMs,
  parsePort,
  participantsFromEnv,
  participantUrl,
  UsageError,
} from '../../lib/cli/args.ts'

/** The message of the UsageError `run` throws; fails the test when it throws nothing else. */
function usageError(run: () => unknown): string {
  try {
    run()
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError)
    return (error as UsageError).message
  }
  throw new Error('expected a UsageError, but nothing was thrown')
}

describe('parsePort', () => {
  test.each([
    ['0', 0],
    ['80', 80],
    ['9000', 9000],
    ['65535', 65535],
    ['008080', 8080],
  ])('%p is port %d', (value, port) => {
    expect(parsePort(value, '--port')).toBe(port)
  })

  test.each(['65536', '-1', '80a', '', ' 80', '1e3', '80.0', '0x50'])('%p is refused', (value) => {
    expect(usageError(() => parsePort(value, '--port'))).toBe(
      `invalid --port ${JSON.stringify(value)}: expected a number 0-65535`,
    )
  })

  test('the error names the flag or variable it was given', () => {
    expect(usageError(() => parsePort('x', '$PORT'))).toBe(
      'invalid $PORT "x": expected a number 0-65535',
    )
  })
})

describe('parseMs', () => {
  test.each([
    ['1', 1],
    ['10000', 10000],
    ['86400000', 86400000],
  ])('%p is %d ms', (value, ms) => {
    expect(parseMs(value, 'timeout')).toBe(ms)
  })

  // Every duration on the command line is in milliseconds, a plain whole number.
  test.each(['0', '-5', '1.5', '10s', '', 'abc', '1e3'])('%p is refused as --timeout', (value) => {
    expect(usageError(() => parseMs(value, 'timeout'))).toBe(
      `invalid --timeout ${JSON.stringify(value)}: expected milliseconds > 0`,
    )
  })

  test('a lower bound of 0 accepts 0', () => {
    expect(parseMs('0', 'ack-wait', 0)).toBe(0)
    expect(usageError(() => parseMs('-1', 'ack-wait', 0))).toBe(
      'invalid --ack-wait "-1": expected milliseconds >= 0',
    )
  })

  test('another lower bound is named in the error', () => {
    expect(parseMs('50', 'tick', 50)).toBe(50)
    expect(usageError(() => parseMs('49', 'tick', 50))).toBe(
      'invalid --tick "49": expected milliseconds >= 50',
    )
  })
})

describe('participantUrl', () => {
  test.each([
    ['localhost:9000', 'http://localhost:9000'],
    ['127.0.0.1:9001', 'http://127.0.0.1:9001'],
    ['http://127.0.0.1:9001', 'http://127.0.0.1:9001'],
    ['http://127.0.0.1:9001/', 'http://127.0.0.1:9001'],
    ['https://db.example:8443/base//', 'https://db.example:8443/base'],
    ['HTTP://Node-A:9000', 'http://node-a:9000'],
    ['[::1]:9000', 'http://[::1]:9000'],
  ])('%p is %p', (value, url) => {
    expect(participantUrl(value)).toBe(url)
  })

  test.each([
    ['without a port', 'localhost'],
    ['with only a scheme and host', 'http://localhost'],
    // The URL parser drops a scheme's default port, so it would be no port at all.
    ['with the default port of its scheme', 'https://example.com:443'],
    ['with another scheme', 'ftp://example.com:21'],
    ['with a query', 'http://localhost:9000/?a=1'],
    ['with a fragment', 'http://localhost:9000/#x'],
    ['with a port out of range', 'localhost:70000'],
    ['empty', ''],
  ])('an address %s is refused', (_, value) => {
    expect(usageError(() => participantUrl(value))).toBe(
      `invalid participant ${JSON.stringify(value)}: expected host:port or http://host:port`,
    )
  })
})

describe('namedParticipant', () => {
  test.each([
    ['p0=localhost:9000', 'p0', 'http://localhost:9000'],
    ['Bank_2-b=http://10.0.0.2:9000/', 'Bank_2-b', 'http://10.0.0.2:9000'],
    ['localhost:9000', null, 'http://localhost:9000'],
    ['http://localhost:9000', null, 'http://localhost:9000'],
  ])('%p is named %p at %p', (value, name, url) => {
    expect(namedParticipant(value)).toEqual({ name, url })
  })

  test('a bad address after the name is refused in the words of participantUrl', () => {
    expect(usageError(() => namedParticipant('p0=localhost'))).toBe(
      'invalid participant "localhost": expected host:port or http://host:port',
    )
  })
})

describe('participantsFromEnv', () => {
  test('takes N = 0, 1, 2, … in numeric order, not string order, and nothing else', () => {
    const env = {
      PEER_PARTICIPANT10_HOST: 'c',
      PEER_PARTICIPANT10_PORT: '9010',
      PEER_PARTICIPANT2_PORT: '9002',
      PEER_PARTICIPANT2_HOST: 'b',
      PEER_PARTICIPANT0_HOST: 'a',
      PEER_PARTICIPANT0_PORT: '9000',
      PEER_PARTICIPANT_HOST: 'ignored',
      PORT: '8000',
    }
    expect(participantsFromEnv(env)).toEqual(['http://a:9000', 'http://b:9002', 'http://c:9010'])
  })

  test('no such variables is no participants', () => {
    expect(participantsFromEnv({ HOME: '/root' })).toEqual([])
  })

  test('an IPv6 host is bracketed', () => {
    const env = { PEER_PARTICIPANT0_HOST: '::1', PEER_PARTICIPANT0_PORT: '9000' }
    expect(participantsFromEnv(env)).toEqual(['http://[::1]:9000'])
  })

  test.each([
    ['a host without a port', { PEER_PARTICIPANT3_HOST: 'a' }],
    ['a port without a host', { PEER_PARTICIPANT3_PORT: '9000' }],
    ['an empty host', { PEER_PARTICIPANT3_HOST: '', PEER_PARTICIPANT3_PORT: '9000' }],
  ])('%s is refused', (_, env) => {
    expect(usageError(() => participantsFromEnv(env))).toBe(
      'PEER_PARTICIPANT3_HOST and PEER_PARTICIPANT3_PORT must both be set',
    )
  })

  test('a bad port is refused, naming its variable', () => {
    const env = { PEER_PARTICIPANT1_HOST: 'a', PEER_PARTICIPANT1_PORT: 'http' }
    expect(usageError(() => participantsFromEnv(env))).toBe(
      'invalid PEER_PARTICIPANT1_PORT "http": expected a number 0-65535',
    )
  })
})

describe('isClientCommand', () => {
  test.each(['start', 'submit', 'show', 'status', 'get', 'help'])('%p is a client command', (w) => {
    expect(isClientCommand(w)).toBe(true)
  })

  // Anything else is batch mode's transaction list (or `serve`, which is no client command).
  test.each([undefined, 't1', 'serve', 'START', '', 'resolve'])('%p is not', (word) => {
    expect(isClientCommand(word)).toBe(false)
  })
})
