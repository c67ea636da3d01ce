// Throwaway certificates for the TLS tests, made with openssl: a CA, and one certificate it
// signs for 127.0.0.1 and localhost, good both as a server's and as a client's (mutual TLS).
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'

export type Certs = { ca: string; cert: string; key: string }

function openssl(args: string[], cwd: string): void {
  const run = Bun.spawnSync(['openssl', ...args], { cwd, stdout: 'pipe', stderr: 'pipe' })
  if (run.exitCode !== 0) {
    throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(run.stderr)}`)
  }
}

/** Writes ca.pem, cert.pem and key.pem into `dir`; their paths. */
export function makeCerts(dir: string): Certs {
  const curve = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  openssl(
    ['req', '-x509', ...curve, '-keyout', 'ca-key.pem', '-out', 'ca.pem', '-days', '2'].concat([
      '-subj',
      '/CN=twophase test CA',
    ]),
    dir,
  )
  openssl(['req', ...curve, '-keyout', 'key.pem', '-out', 'node.csr', '-subj', '/CN=node'], dir)
  writeFileSync(
    join(dir, 'node.ext'),
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n',
  )
  openssl(
    ['x509', '-req', '-in', 'node.csr', '-CA', 'ca.pem', '-CAkey', 'ca-key.pem'].concat([
      '-CAcreateserial',
      '-out',
      'cert.pem',
      '-days',
      '2',
      '-extfile',
      'node.ext',
    ]),
    dir,
  )
  return { ca: join(dir, 'ca.pem'), cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') }
}

/** The flags that put a node on mutual TLS with `certs`. */
export function tlsFlags(certs: Certs): string[] {
  return ['--tls-cert', certs.cert, '--tls-key', certs.key, '--tls-ca', certs.ca]
}
