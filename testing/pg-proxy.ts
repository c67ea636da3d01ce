// A TCP proxy in front of a PostgreSQL server that loses answers on purpose: armed, it lets the
// next statement containing a given text reach the server, which runs it, and then cuts the
// connection instead of passing the server's answer on (the client cannot know whether the
// statement took effect). Closed, it cuts the open connections and, like a server that is down,
// refuses new ones, or (`drop`) accepts them and drops them before any answer, as a server
// killed with connections in its backlog does.
import { createServer, connect, type Server, type Socket } from 'node:net'

export class PgProxy {
  readonly #server: Server
  readonly #sockets = new Set<Socket>()
  #armed: string | null = null
  #closeOnCut = false
  #closed: 'refuse' | 'drop' | null = null
  /** How many answers it has lost (each cut after the armed statement reached the server). */
  lost = 0

  private constructor(
    server: Server,
    readonly port: number,
  ) {
    this.#server = server
  }

  /** A proxy on a free loopback port to the server at 127.0.0.1:`serverPort`. */
  static async start(serverPort: number): Promise<PgProxy> {
    let proxy: PgProxy | null = null
    const server = createServer((client) => proxy!.#accept(client, serverPort))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    proxy = new PgProxy(server, (server.address() as { port: number }).port)
    return proxy
  }

  /** `url` (a postgres:// URL of the server) through this proxy. */
  url(url: string): string {
    const u = new URL(url)
    u.port = String(this.port)
    return u.toString()
  }

  /** The next statement whose text contains `text` runs, and its answer is lost; with
   * `thenClose`, the proxy closes at that moment (the server looks down from then on). */
  loseAnswerTo(text: string, thenClose = false): void {
    this.#armed = text
    this.#closeOnCut = thenClose
  }

  /** Closed: every connection is cut, and new ones refused or dropped, until `reopen`. */
  close(how: 'refuse' | 'drop' = 'refuse'): void {
    if (how === 'refuse' && this.#closed !== 'refuse') this.#server.close()
    this.#closed = how
    for (const socket of this.#sockets) socket.destroy()
  }

  async reopen(): Promise<void> {
    const refused = this.#closed === 'refuse'
    this.#closed = null
    if (refused)
      await new Promise<void>((resolve) => this.#server.listen(this.port, '127.0.0.1', resolve))
  }

  stop(): void {
    this.close()
  }

  #accept(client: Socket, serverPort: number): void {
    if (this.#closed !== null) return void client.destroy()
    const upstream = connect(serverPort, '127.0.0.1')
    let cutOnAnswer = false
    const cut = () => {
      client.destroy()
      upstream.destroy()
    }
    for (const socket of [client, upstream]) {
      this.#sockets.add(socket)
      socket.on('error', cut)
      socket.on('close', () => {
        this.#sockets.delete(socket)
        cut()
      })
    }
    client.on('data', (chunk: Buffer) => {
      if (this.#armed !== null && chunk.includes(this.#armed)) {
        this.#armed = null
        cutOnAnswer = true
      }
      upstream.write(chunk)
    })
    upstream.on('data', (chunk: Buffer) => {
      if (!cutOnAnswer) return void client.write(chunk)
      this.lost += 1
      if (this.#closeOnCut) this.close()
      cut()
    })
  }
}
