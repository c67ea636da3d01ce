// The client: `bun coordinator.ts start|submit|show|status|get|help`, talking over HTTP to a
// running coordinator service (and, for `status` and `get`, to its participants). This file is
// the entry point (usage text and dispatch); the commands live in commands.ts, the `start` line
// in start-line.ts, `--on` routing in routing.ts, requests in http.ts, printing in output.ts.
import { UsageError } from './args.ts'
import { getCommand, showCommand, startCommand, statusCommand, submitCommand } from './commands.ts'
import { FlagError, isParseArgsError, parseArgsMessage } from './flags.ts'
import { CLIENT_USAGE_LINES, coordinatorHelp } from './usage.ts'

// A Map, not an object: a word such as `constructor` must not find a command.
const COMMANDS = new Map<string | undefined, (argv: string[]) => Promise<number>>([
  ['start', startCommand],
  ['submit', submitCommand],
  ['show', showCommand],
  ['status', statusCommand],
  ['get', getCommand],
])

/** Runs a client command; resolves to the exit status. Throws UsageError for usage errors and
 * Error for the rest, each printed as one line by the caller. */
export async function runClient(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  if (command === 'help' || rest.includes('--help') || rest.includes('-h')) {
    console.log(coordinatorHelp()) // every mode and command, each with every flag
    return 0
  }
  const run = COMMANDS.get(command)
  try {
    if (run) return await run(rest)
  } catch (error) {
    if (isParseArgsError(error)) {
      const usage = `usage: ${CLIENT_USAGE_LINES[command!]}`
      throw new FlagError(
        `${command}: ${parseArgsMessage(error)} (see: coordinator.ts help)`,
        usage,
      )
    }
    throw error
  }
  throw new UsageError(`unknown command ${JSON.stringify(command)} (see: coordinator.ts help)`)
}
