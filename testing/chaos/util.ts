// Small helpers of the chaos run: error text, forgiving file reads and writes, JSON over HTTP.
import { appendFileSync, readFileSync } from 'node:fs'
import { send, type Bank } from '../bank.ts'

export function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

export function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return ''
  }
}

export function appendLine(path: string, text: string): void {
  try {
    appendFileSync(path, text)
  } catch {} // the directory is gone once the run is over
}

/** GETs JSON, trying three times: a node just restarted may not answer the first time. The
 * request carries what `bank`'s do (the proof of the secret, TLS). */
export async function getJson(bank: Bank, url: string): Promise<unknown> {
  for (let attempt = 1; ; attempt++) {
    try {
      const response = await send(bank, 'GET', url, { timeoutMs: 5000 })
      if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`)
      return await response.json()
    } catch (error) {
      if (attempt >= 3) throw error
      await Bun.sleep(100)
    }
  }
}

export { mapLimit } from '../util.ts'
