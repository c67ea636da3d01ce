// The bench's load generators: closed loops of `concurrency` clients, each sending its next
// transaction (POST /transactions) when the last is answered. `fetch` is Bun's own client in
// this process; `wrk` (Debian package `wrk`) is a C load generator that spends less than half
// the CPU per request, which on a machine shared with the cluster is CPU the nodes get.
import { join } from 'node:path'

export type Client = 'fetch' | 'wrk'

/** What one run of the load measured. Latencies in ms. */
export type Load = {
  /** Transactions answered (the measured ones). */
  answered: number
  committed: number
  seconds: number
  p50: number
  p99: number
  max: number
  /** CPU seconds the load generator used. */
  cpuSeconds: number
}

/** `total` transactions to the coordinator at `url`, the body of the i-th being `bodyOf(i)`. */
export type Spec = {
  /** With several (Bun's fetch only), client i sends to the i-th in turn. */
  url: string | readonly string[]
  concurrency: number
  total: number
  bodyOf: (i: number) => string
}

/** Runs `spec` with `client`; `dir` is for the files a client needs. */
export function drive(client: Client, spec: Spec, dir: string): Promise<Load> {
  return client === 'wrk' ? driveWrk(spec, dir) : driveFetch(spec)
}

async function driveFetch({ url, concurrency, total, bodyOf }: Spec): Promise<Load> {
  const latencies: number[] = []
  let next = 0
  let committed = 0
  const cpu = process.cpuUsage()
  const started = performance.now()
  async function client(c: number): Promise<void> {
    const to = typeof url === 'string' ? url : url[c % url.length]!
    for (let i = next++; i < total; i = next++) {
      const t0 = performance.now()
      const response = await fetch(`${to}/transactions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: bodyOf(i),
      })
      const reply = (await response.json()) as { decision?: string }
      latencies.push(performance.now() - t0)
      if (reply.decision === 'commit') committed += 1
    }
  }
  await Promise.all(Array.from({ length: concurrency }, (_, c) => client(c)))
  const seconds = (performance.now() - started) / 1000
  const used = process.cpuUsage(cpu)
  latencies.sort((a, b) => a - b)
  const at = (q: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!
  return {
    answered: total,
    committed,
    seconds,
    p50: at(0.5),
    p99: at(0.99),
    max: latencies.at(-1)!,
    cpuSeconds: (used.user + used.system) / 1e6,
  }
}

type WrkSummary = {
  answered: number
  commits: number
  us: number
  p50: number
  p99: number
  max: number
  errors: number
}

async function driveWrk({ url, concurrency, total, bodyOf }: Spec, dir: string): Promise<Load> {
  if (typeof url !== 'string') throw new Error('wrk drives one coordinator: use --client fetch')
  // One body more per connection: what is in flight when the last answer arrives.
  const bodies = join(dir, `bodies-${concurrency}-${total}.txt`)
  const lines = Array.from({ length: total + concurrency }, (_, i) => bodyOf(i))
  await Bun.write(bodies, `${lines.join('\n')}\n`)
  const script = join(import.meta.dir, 'wrk.lua')
  // A bound, not a goal (the script stops wrk first): a cluster that stopped answering ends the
  // level within it instead of hanging the bench.
  const seconds = Math.max(60, Math.ceil(total / 100))
  const args = ['-t1', `-c${concurrency}`, `-d${seconds}s`, '--timeout', '10s', '-s', script]
  const proc = Bun.spawn(['wrk', ...args, url, '--', bodies, String(total)], {
    stdout: 'pipe',
    stderr: 'pipe',
  })
  // The script says `answered` once the last needed answer is in; SIGINT makes wrk report.
  const stderr = (async () => {
    let text = ''
    for await (const chunk of proc.stderr.pipeThrough(new TextDecoderStream())) {
      text += chunk
      if (text.includes('answered\n')) proc.kill('SIGINT')
    }
    return text
  })()
  const [stdout, errors, code] = await Promise.all([
    new Response(proc.stdout).text(),
    stderr,
    proc.exited,
  ])
  const line = stdout.split('\n').find((l) => l.startsWith('{"answered"'))
  if (code !== 0 || line === undefined) {
    throw new Error(`wrk failed (exit ${code}): ${errors.trim() || stdout.trim()}`)
  }
  const s = JSON.parse(line) as WrkSummary
  if (s.errors > 0) {
    throw new Error(`wrk: ${s.errors} requests failed (refused, timed out or not 2xx)`)
  }
  if (s.answered < total) {
    throw new Error(`wrk: ${s.answered} of ${total} transactions answered within ${seconds} s`)
  }
  const usage = proc.resourceUsage()
  return {
    answered: s.answered,
    committed: s.commits,
    seconds: s.us / 1e6,
    p50: s.p50 / 1000,
    p99: s.p99 / 1000,
    max: s.max / 1000,
    cpuSeconds: usage ? Number(usage.cpuTime.total) / 1e6 : 0,
  }
}
