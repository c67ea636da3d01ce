// The client: `bun coordinator.ts start|submit|show|status|get|help`, talking over HTTP to a
// running coordinator service (and, for `status` and `get`, to its participants). This file is
// the entry point (usage text and dispatch); the commands live in commands.ts, the `start` line
// in start-line.ts, `--on` routing in routing.ts, requests in http.ts, printing in output.ts.
import { UsageError, isParseArgsError } from './args.ts'
import { getCommand, showCommand, startCommand, statusCommand, submitCommand } from './commands.ts'
import { DEFAULT_COORDINATOR } from './http.ts'

export const CLIENT_USAGE = `usage:
  coordinator.ts [TXN ...] [--participant host:port]... [--timeout MS] [--dir .]   batch mode
  coordinator.ts serve [--port 8000] [--participant [NAME=]host:port]... [--dir .] service
  coordinator.ts start [ID] [2PC] [OP [--on P]...]...    run a transaction
  coordinator.ts submit FILE|-                   run a transaction given as JSON (POST body)
  coordinator.ts show ID                         look a transaction up
  coordinator.ts status                          the coordinator and each participant
  coordinator.ts get KEY [--on P]                read a key from participant P (default 0)
  coordinator.ts help                            this text

operations (keywords in any case; VALUE is JSON when it parses as JSON, else a string):
  SET KEY VALUE | INSERT KEY VALUE | DELETE KEY | ADD KEY AMOUNT [MIN N] | CHECK KEY [VALUE]
  --on P after an operation sends it only to participant P (index, name or URL; repeatable);
  operations without --on go to every participant.
  e.g. start TX2 ADD balance -100 MIN 0 --on 0 ADD balance 100 --on 1

client options: --coordinator URL (default $TWOPHASE_COORDINATOR, else ${DEFAULT_COORDINATOR}),
  --json (machine-readable output: one JSON object on stdout)

exit status: 0 committed (start, submit) or found (show, get, status); 1 aborted, not found,
  or the coordinator or a participant cannot be reached; 2 usage error, or a request the
  coordinator rejected as malformed`

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
    console.log(CLIENT_USAGE)
    return 0
  }
  const run = COMMANDS.get(command)
  try {
    if (run) return await run(rest)
  } catch (error) {
    if (isParseArgsError(error)) {
      // Node's messages go on with advice about `--`; the first sentence is the point.
      const message = (error as Error).message
        .split(/\.\s/)[0]!
        .replace(/^\w/, (c) => c.toLowerCase())
      throw new UsageError(`${command}: ${message} (see: coordinator.ts help)`)
    }
    throw error
  }
  throw new UsageError(`unknown command ${JSON.stringify(command)} (see: coordinator.ts help)`)
}
