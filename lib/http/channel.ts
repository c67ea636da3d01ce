// A participant's persistent channel: a WebSocket (GET /channel) on which the coordinator sends
// what it would POST to /batch and gets each answer back by its frame's id. A loopback request
// through Bun's fetch costs its caller several times what a frame costs (see
// docs/performance.md). A frame is answered by the app's own POST /batch handler, after the
// checks its middleware makes of a request, made here of the frame: the body limit, the proof
// the frame carries (every frame proven, none replayed, against the same replay guard as
// requests), and the JSON errors; the answer is the one the request would get, byte for byte.
// So the channel changes how messages travel, never what they mean or who may send them; a
// frame only skips the Request and the router that a request goes through, which cost a
// participant more than the rest of a batch of one. The upgrade itself is a request like any
// other: with a secret it needs its proof too.
import type { Server, ServerWebSocket, WebSocketHandler } from 'bun'
import type { Hono } from 'hono'
import { MAX_BODY_BYTES } from './json-errors.ts'

export const CHANNEL_PATH = '/channel'
/** A frame's id and proof take at most this much beside its body. */
const FRAME_HEAD_BYTES = 1024
/** WebSocket close codes: a node that stops (1001), a frame that is not one (1007), a bug while
 * answering (1011). */
const GOING_AWAY = 1001
const NOT_A_FRAME = 1007
const INTERNAL = 1011

type Socket = ServerWebSocket<unknown>

/** How a frame's body is answered: the status and body POST /batch would answer it with, the
 * frame's proof standing for the request's Authorization. */
export type FrameAnswerer = (
  proof: string,
  body: string,
) => Promise<{ status: number; body: string }>

const answerers = new WeakMap<Hono, FrameAnswerer>()

/** GET /channel: upgrades to a channel whose frames `answer` answers (installed after
 * authentication, before other routes). */
export function useChannel(app: Hono, answer: FrameAnswerer): void {
  answerers.set(app, answer)
  app.get(CHANNEL_PATH, (c) => {
    if (upgraded(c.env as Server<unknown> | undefined, c.req.raw)) return new Response(null)
    return c.json(
      { error: 'GET /channel is a WebSocket upgrade, on a server that takes them' },
      426,
    )
  })
}

/** Whether `request` became a channel: not when it is no upgrade, nor on a server without
 * `channelSocket` (Bun throws there: an app served by another's Bun.serve). */
function upgraded(server: Server<unknown> | undefined, request: Request): boolean {
  try {
    return server?.upgrade?.(request, { data: null }) === true
  } catch {
    return false
  }
}

/** Bun.serve's `websocket` for `app`, and the channels open on it. A server's graceful stop
 * waits for every WebSocket to close, and not for the frames being answered, so a node that
 * stops calls `closeAll` first: it takes no new frame, waits for those being answered (as a
 * graceful stop waits for its requests; a batch waits BATCH_WAIT_MS at most) and sends their
 * answers, then closes every channel. */
export function channelSocket(app: Hono) {
  const answer = answerers.get(app)
  if (answer === undefined) throw new Error('assertion: channelSocket of an app without useChannel')
  const open = new Set<Socket>()
  const answering = new Set<Promise<void>>()
  let stopping = false
  const websocket: WebSocketHandler<unknown> = {
    maxPayloadLength: MAX_BODY_BYTES + FRAME_HEAD_BYTES,
    open: (ws) => void open.add(ws),
    close: (ws) => void open.delete(ws),
    message(ws: Socket, data: string | Buffer) {
      const frame = frameOf(typeof data === 'string' ? data : data.toString('utf8'))
      if (frame === null) return ws.close(NOT_A_FRAME, 'a frame is "id\\nproof\\nbody"')
      if (stopping) return // unanswered, as a request to a server that stopped listening
      const work = answerOn(ws, answer, frame).finally(() => answering.delete(work))
      answering.add(work)
    },
  }
  const closeAll = async () => {
    stopping = true
    await Promise.all(answering)
    for (const ws of open) ws.close(GOING_AWAY, 'the participant is stopping')
    open.clear()
  }
  return { websocket, closeAll }
}

export type Frame = { id: string; proof: string; body: string }

/** A frame is `id \n proof \n body` (the proof empty without a secret), its answer
 * `id \n status \n body`: the body travels as in a request, not quoted again. */
export function frameOf(text: string): Frame | null {
  const first = text.indexOf('\n')
  const second = first < 0 ? -1 : text.indexOf('\n', first + 1)
  if (second < 0 || second > FRAME_HEAD_BYTES) return null
  const id = text.slice(0, first)
  if (!/^\d{1,15}$/.test(id)) return null
  return { id, proof: text.slice(first + 1, second), body: text.slice(second + 1) }
}

/** Sends `frame`'s answer on `ws`; a bug while answering closes the channel (1011). */
async function answerOn(ws: Socket, answer: FrameAnswerer, frame: Frame): Promise<void> {
  try {
    const { status, body } = await answer(frame.proof, frame.body)
    ws.send(`${frame.id}\n${status}\n${body}`)
  } catch (error) {
    ws.close(INTERNAL, `answering frame ${frame.id}: ${String(error).slice(0, 80)}`)
  }
}
