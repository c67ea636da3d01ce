// The flags that set who a node trusts: the cluster's secret (`--secret-file`, or
// $TWOPHASE_SECRET_FILE), TLS (`--tls-cert`, `--tls-key`, and `--tls-ca`, which also asks every
// peer for a certificate from that CA: mutual TLS), and the coordinator's client tokens.
import { readFileSync } from 'node:fs'
import { UsageError } from '../core/errors.ts'
import type { HttpOptions } from '../node/ports.ts'
import type { Credentials } from '../http/auth.ts'

export const SECURITY_FLAGS = {
  'secret-file': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-ca': { type: 'string' },
} as const

export type SecurityValues = {
  'secret-file'?: string
  'tls-cert'?: string
  'tls-key'?: string
  'tls-ca'?: string
}

type Pem = { cert?: string; key?: string; ca?: string }

export type Security = {
  secret: string | null
  secretFile: string | null
  /** PEM texts: this node's certificate and key, and the CA it trusts. */
  tls: Pem | null
}

const MIN_SECRET = 16

/** Reads the files the flags (or the environment) name; a UsageError names what is wrong. */
export function readSecurity(
  values: SecurityValues,
  env: Record<string, string | undefined>,
): Security {
  const secretFile = values['secret-file'] ?? env.TWOPHASE_SECRET_FILE ?? null
  const secret = secretFile === null ? null : readSecret(secretFile)
  const cert = values['tls-cert']
  const key = values['tls-key']
  const ca = values['tls-ca']
  if ((cert === undefined) !== (key === undefined)) {
    throw new UsageError('--tls-cert and --tls-key go together: give both or neither')
  }
  const tls: Pem | null =
    cert === undefined && ca === undefined
      ? null
      : {
          ...(cert ? { cert: readPem(cert, '--tls-cert') } : {}),
          ...(key ? { key: readPem(key, '--tls-key') } : {}),
          ...(ca ? { ca: readPem(ca, '--tls-ca') } : {}),
        }
  return { secret, secretFile, tls }
}

function readSecret(path: string): string {
  const secret = readText(path, '--secret-file').trim()
  if (secret.length < MIN_SECRET) {
    throw new UsageError(`the secret in ${path} is shorter than ${MIN_SECRET} characters`)
  }
  return secret
}

function readPem(path: string, flag: string): string {
  const text = readText(path, flag)
  if (!text.includes('-----BEGIN ')) throw new UsageError(`${flag} ${path}: not a PEM file`)
  return text
}

function readText(path: string, flag: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch (error) {
    const code = (error as { code?: string }).code ?? String(error)
    throw new UsageError(`${flag} ${path}: cannot read it (${code})`)
  }
}

/** The client tokens of `serve --client-tokens-file`: one per line, blank lines and `#`
 * comments ignored, each at least 16 characters. */
export function readClientTokens(path: string): string[] {
  const tokens = readText(path, '--client-tokens-file')
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
  for (const token of tokens) {
    if (token.length < MIN_SECRET || /\s/.test(token)) {
      throw new UsageError(`--client-tokens-file ${path}: a token is shorter than 16 characters`)
    }
  }
  return tokens
}

/** A node that serves: with a CA it must have its own certificate, or it would serve plain HTTP
 * while asking its peers for TLS. */
export function servingSecurity(security: Security): Security {
  if (security.tls?.ca && !security.tls.cert) {
    throw new UsageError('a node given --tls-ca needs --tls-cert and --tls-key too')
  }
  return security
}

/** What this node's own requests carry. */
export function httpOptionsOf(security: Security): HttpOptions {
  return { secret: security.secret, tls: security.tls }
}

export function credentialsOf(security: Security, clientTokens: string[] = []): Credentials {
  return { secret: security.secret, clientTokens }
}

/** Bun.serve's `tls`, or undefined without a certificate. With a CA, a peer must present a
 * certificate from it (mutual TLS). */
export function serveTlsOf(security: Security) {
  const tls = security.tls
  if (!tls?.cert || !tls.key) return undefined
  const mutual = tls.ca !== undefined
  return {
    cert: tls.cert,
    key: tls.key,
    ...(mutual ? { ca: tls.ca, requestCert: true, rejectUnauthorized: true } : {}),
  }
}

/** The scheme this node's peers are reached with. */
export function schemeOf(security: Security): 'http' | 'https' {
  return security.tls?.cert || security.tls?.ca ? 'https' : 'http'
}

/** One line at start-up saying whom this node trusts. */
export function trustLine(role: string, security: Security): string {
  const tls = serveTlsOf(security)
  const wire = tls === undefined ? 'plain HTTP' : tls.ca ? 'mutual TLS' : 'TLS'
  if (security.secret === null) {
    return `${role}: no --secret-file: accepting requests from anyone who can reach it (${wire})`
  }
  return `${role}: requests must prove the cluster secret of ${security.secretFile} (${wire})`
}
