// `status --watch`: the status redrawn in place every --interval ms until Ctrl-C (or SIGTERM),
// like `watch`: the screen is cleared and the picture drawn from the top. A coordinator or a
// participant that cannot be reached is shown as such, and the watch goes on. With --json, one
// JSON line per round instead.
import { parseMs } from './args.ts'

/** Clears the screen and moves to its top-left corner (ANSI). */
export const REDRAW = '\x1b[H\x1b[2J'

export type Round = { lines: string[]; json: unknown }

/** Runs `round` every `intervalMs` and draws what it returns; resolves to 0 once stopped. */
export async function watch(
  round: () => Promise<Round>,
  intervalMs: number,
  json: boolean,
): Promise<number> {
  let stopped = false
  const { promise: stop, resolve } = Promise.withResolvers<void>()
  const end = () => {
    stopped = true
    resolve()
  }
  process.on('SIGINT', end)
  process.on('SIGTERM', end)
  while (!stopped) {
    const started = performance.now()
    const { lines, json: body } = await round()
    if (json) process.stdout.write(`${JSON.stringify(body)}\n`)
    else {
      const footer = `every ${intervalMs} ms, ${new Date().toISOString()}; Ctrl-C to stop`
      process.stdout.write(`${REDRAW}${[...lines, '', footer].join('\n')}\n`)
    }
    const wait = Math.max(0, intervalMs - (performance.now() - started))
    await Promise.race([stop, Bun.sleep(wait)])
  }
  return 0
}

/** `--interval MS`: at least 100 ms, 1000 by default. */
export function intervalOf(value: string | undefined): number {
  return parseMs(value ?? '1000', 'interval', 100)
}
