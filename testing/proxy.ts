// A fault-injecting HTTP proxy between the coordinator and one participant: per path it passes,
// refuses (503), drops (holds the request until the fault heals, then fails it), or delays. It
// passes no WebSockets, as many proxies do not: a coordinator behind it sends its batches as
// plain requests (lib/node/channel.ts), each of which it sees.
/** A batch counts as the protocol step of its first message (`/prepare`, `/commit`, `/abort`),
 * so a fault set on a step applies whether the message travels alone or in a batch. */
function batchStep(body: ArrayBuffer | undefined): string {
  try {
    const { messages } = JSON.parse(new TextDecoder().decode(body)) as {
      messages: { type: string }[]
    }
    return `/${messages[0]!.type}`
  } catch {
    return '/batch'
  }
}

export type Fault = 'pass' | 'refuse' | 'drop' | { delayMs: number }

/** Every proxy not yet stopped, so a test's afterEach can stop them all. */
const running = new Set<FaultProxy>()

/** Stops every proxy still running (each test's afterEach). */
export function stopProxies(): void {
  for (const proxy of running) proxy.stop()
}

export class FaultProxy {
  readonly #server: ReturnType<typeof Bun.serve>
  #faults = new Map<string, Fault>() // by path; '*' for every path
  #dropped: (() => void)[] = []
  /** Requests that reached the proxy, by path. */
  readonly seen = new Map<string, number>()

  constructor(readonly target: string) {
    this.#server = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      fetch: (request) => this.#handle(request),
    })
    running.add(this)
  }

  get url(): string {
    return `http://127.0.0.1:${this.#server.port}`
  }

  /** Applies `fault` to requests for `path` (or every path with '*'). */
  set(fault: Fault, path = '*'): void {
    this.#faults.set(path, fault)
  }

  /** Clears every fault; requests that were dropped now fail, as a lost request eventually does. */
  heal(): void {
    this.#faults.clear()
    for (const release of this.#dropped.splice(0)) release()
  }

  stop(): void {
    running.delete(this)
    this.heal()
    this.#server.stop(true)
  }

  async #handle(request: Request): Promise<Response> {
    if (request.headers.get('upgrade') !== null) {
      return Response.json({ error: 'proxy: no WebSockets' }, { status: 501 })
    }
    const path = new URL(request.url).pathname
    const body = request.method === 'GET' ? undefined : await request.arrayBuffer()
    const step = path === '/batch' ? batchStep(body) : path
    this.seen.set(step, (this.seen.get(step) ?? 0) + 1)
    const fault = this.#faults.get(step) ?? this.#faults.get('*') ?? 'pass'
    if (fault === 'refuse') return new Response('proxy: refused', { status: 503 })
    if (fault === 'drop') {
      await new Promise<void>((release) => this.#dropped.push(release))
      return new Response('proxy: dropped', { status: 503 })
    }
    if (typeof fault === 'object') await Bun.sleep(fault.delayMs)
    try {
      const response = await fetch(`${this.target}${path}`, {
        method: request.method,
        headers: request.headers,
        body,
      })
      return new Response(await response.arrayBuffer(), {
        status: response.status,
        headers: response.headers,
      })
    } catch {
      return new Response('proxy: target unreachable', { status: 502 })
    }
  }
}
