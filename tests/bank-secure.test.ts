// The bank on a secured cluster (testing/bank.ts `startCluster`): a fresh secret, client tokens
// and mutual TLS on every node. Transfers signed with the secret (the proof covers each body as
// sent), then the example's command line with a client token and the certificate; money is
// conserved either way, and a bank without the secret's proof is refused.
import { afterEach, expect, test } from 'bun:test'
import { join } from 'node:path'
import {
  connect,
  mulberry32,
  openAccounts,
  planTransfers,
  readBalances,
  runTransfers,
  startCluster,
  waitSettled,
  type LocalCluster,
} from '../testing/bank.ts'
import { ROOT } from '../testing/nodes.ts'
import { cleanup, runCommand } from '../testing/processes.ts'

let cluster: LocalCluster | null = null
afterEach(async () => {
  await cluster?.stop()
  cluster = null
  await cleanup()
})

const ACCOUNTS = 12
const INITIAL = 100

test('300 signed transfers over mutual TLS conserve money; a token runs the example', async () => {
  cluster = await startCluster({ secret: true, tokens: true, tls: true })
  expect(cluster.coordinator).toStartWith('https://127.0.0.1:')
  // The nodes' own credentials, the secret and the certificate: every request signed.
  const bank = await connect(cluster.coordinator, { ...cluster.auth, token: null })
  for (const url of bank.participants) expect(url).toStartWith('https://127.0.0.1:')
  expect(await openAccounts(bank, ACCOUNTS, INITIAL)).toEqual({ opened: ACCOUNTS, existing: 0 })
  const plan = planTransfers(300, ACCOUNTS, mulberry32(11), { prefix: 'signed' })
  const outcomes = await runTransfers(bank, plan, { concurrency: 8 })
  expect(outcomes.filter((o) => o.decision === null)).toEqual([])
  expect(outcomes.filter((o) => o.decision === 'commit').length).toBeGreaterThan(0)
  await waitSettled(bank)
  const balances = await readBalances(bank, ACCOUNTS)
  expect(balances.reduce((a, b) => a + b, 0)).toBe(ACCOUNTS * INITIAL)
  expect(balances.filter((b) => b < 0)).toEqual([])

  // Without the secret's proof (and without a token) the certificate alone opens nothing.
  const tlsOnly = connect(cluster.coordinator, { tls: cluster.auth.tls ?? null })
  await expect(tlsOnly).rejects.toThrow('HTTP 401')

  // The command line: transfers with the client token, reads with the secret, host:port on TLS.
  const keys = cluster.keysDir
  const run = await runCommand(
    [process.execPath, join(ROOT, 'examples/bank.ts')],
    [
      ...['--coordinator', new URL(cluster.coordinator).host, '--accounts', String(ACCOUNTS)],
      ...['--transfers', '100', '--concurrency', '8', '--seed', '3'],
      ...['--secret-file', join(keys, 'secret'), '--token-file', join(keys, 'client-tokens')],
      ...['--tls-ca', join(keys, 'ca.pem'), '--tls-cert', join(keys, 'cert.pem')],
      ...['--tls-key', join(keys, 'key.pem')],
    ],
  )
  expect(run.stderr).toBe('')
  expect(run.code).toBe(0)
  const lines = run.stdout.trimEnd().split('\n')
  expect(lines[0]).toBe(`coordinator ${cluster.coordinator} (given), 3 participants`)
  expect(lines[1]).toBe(`${ACCOUNTS} accounts: 0 opened with ${INITIAL} each, ${ACCOUNTS} existed`)
  expect(lines.at(-1)).toBe(`total ${ACCOUNTS * INITIAL} = ${ACCOUNTS * INITIAL} expected`)
}, 60_000)
