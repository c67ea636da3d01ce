// The flags and help of participant.ts and coordinator.ts (batch mode, `serve`, the client), in
// one place, so that --help lists every flag with its default and the parsers take exactly
// those. docs/cli.md says the same at length.
import { flagLines, type Command } from './flags.ts'

export const DEFAULT_COORDINATOR = 'http://127.0.0.1:8000'

const DIR_HELP = "the node's directory, created if missing:"

/** How a long-running node keeps its history small (lib/node/retention.ts). */
const HISTORY_FLAGS = {
  retain: {
    value: 'N',
    default: '10000',
    help: 'finished transactions kept in memory; older ones are folded into one record each',
  },
  'no-views': {
    help: 'write no state.txt / decision.txt (they list every transaction ever decided)',
  },
} as const

/** Who a node trusts (lib/cli/security.ts reads them): every node takes these. */
const TRUST_FLAGS = {
  'secret-file': {
    value: 'PATH',
    default: '$TWOPHASE_SECRET_FILE, else none: anyone is heard',
    help: "the cluster's shared secret (16+ characters): every request must prove it",
  },
  'tls-cert': {
    value: 'PEM',
    default: 'none: plain HTTP',
    help: "this node's certificate (with --tls-key): it serves and connects over TLS",
  },
  'tls-key': { value: 'PEM', default: 'none', help: 'the private key of --tls-cert' },
  'tls-ca': {
    value: 'PEM',
    default: "none: the system's CAs",
    help: 'the CA it trusts; a server then requires a client certificate from it (mutual TLS)',
  },
} as const

export const PARTICIPANT_FLAGS = {
  port: { value: 'PORT', default: '$PORT, else 9000', help: 'the port to listen on' },
  host: { value: 'HOST', default: '$HOST, else 0.0.0.0', help: 'the address to bind' },
  dir: {
    value: 'DIR',
    default: '.',
    help: `${DIR_HELP} votes.txt, participant.db, state.txt, participant.json`,
  },
  'in-doubt-after': {
    value: 'MS',
    default: '5000',
    help: 'how long a prepared transaction waits before the participant asks about its outcome',
  },
  store: {
    value: 'STORE',
    default: 'sqlite',
    help: 'sqlite, postgres (a private cluster under DIR/postgres) or a postgres:// URL',
  },
  'allow-sql': {
    help: 'run the "sql" operations of a prepare on a PostgreSQL --store (refused otherwise)',
  },
  coordinator: {
    value: 'URL',
    multiple: true,
    default: 'none: whom each prepare names',
    help: 'a coordinator it may ask in doubt; a prepare naming another is refused; repeatable',
  },
  peer: {
    value: 'URL',
    multiple: true,
    default: 'none: whom each prepare names',
    help: 'a participant it may ask in doubt; others a prepare names are ignored; repeatable',
  },
  ...HISTORY_FLAGS,
  ...TRUST_FLAGS,
} as const

export const RESOLVE_FLAGS = {
  dir: { value: 'DIR', default: '.', help: "the participant's directory, which holds its log" },
  ...TRUST_FLAGS,
} as const

const TRUST_USAGE = '[--secret-file PATH] [--tls-cert PEM --tls-key PEM] [--tls-ca PEM]'
const PARTICIPANT_USAGE =
  'participant.ts [--port PORT] [--host HOST] [--dir DIR] [--in-doubt-after MS] [--store STORE] ' +
  `[--allow-sql] [--coordinator URL]... [--peer URL]... [--retain N] [--no-views] ` +
  TRUST_USAGE
const RESOLVE_USAGE = `participant.ts resolve TXN commit|abort [--dir DIR] ${TRUST_USAGE}`

function participantHelp(): string {
  return [
    `usage: ${PARTICIPANT_USAGE}`,
    `       ${RESOLVE_USAGE}`,
    '',
    'A participant node: votes on prepare, records outcomes, serves until SIGTERM or Ctrl-C.',
    '',
    'flags:',
    ...flagLines(PARTICIPANT_FLAGS),
    '',
    "resolve TXN commit|abort records an operator's heuristic outcome for TXN in the",
    'participant of DIR (through it when it runs, else in its log); flags:',
    ...flagLines(RESOLVE_FLAGS, false),
    '',
    'votes.txt in DIR (optional): line N is the vote (yes or no) for transaction tN.',
    'exit status: 0 stopped cleanly (resolve: recorded); 1 a failure (resolve: the outcome',
    '  contradicts a known one); 2 a usage or configuration error (a bad flag, a bad votes.txt,',
    '  resolve in a directory without a participant log)',
  ].join('\n')
}

export const PARTICIPANT: Command<typeof PARTICIPANT_FLAGS> = {
  name: 'participant.ts',
  usage: PARTICIPANT_USAGE,
  flags: PARTICIPANT_FLAGS,
  help: participantHelp,
}

export const RESOLVE: Command<typeof RESOLVE_FLAGS> = {
  name: 'participant.ts resolve',
  usage: RESOLVE_USAGE,
  flags: RESOLVE_FLAGS,
  positionals: true,
  help: participantHelp,
}

/** The coordinator's log in PostgreSQL, shared under leases (lib/store/pg-log.ts). */
const LOG_FLAGS = {
  'log-db': {
    value: 'postgres://…',
    default: 'none: coordinator.db (SQLite) in --dir',
    help: 'keep the log in this PostgreSQL database, which other coordinators may share',
  },
  lease: {
    value: 'MS',
    default: '3000',
    help: 'with --log-db: how long a silent coordinator keeps its work before another takes it',
  },
} as const

const TIMEOUT = { value: 'MS', default: '10000', help: 'how long prepare waits for the votes' }
const ENV_PEERS = 'none; PEER_PARTICIPANT<N>_HOST and _PORT count too'

export const BATCH_FLAGS = {
  participant: {
    value: 'host:port|URL',
    multiple: true,
    default: ENV_PEERS,
    help: 'a participant; repeatable',
  },
  timeout: { ...TIMEOUT, help: `${TIMEOUT.help} before it aborts` },
  'deliver-timeout': {
    value: 'MS',
    default: '30000',
    help:
      'how long a decision may wait for its acknowledgements (3pc: and a commit for its ' +
      'quorum of precommits)',
  },
  protocol: {
    value: '2pc|3pc',
    default: '2pc',
    help:
      'how each new transaction runs: two-phase commit, or three-phase (prepare, precommit, ' +
      'then commit once a majority is precommitted)',
  },
  dir: { value: 'DIR', default: '.', help: `${DIR_HELP} coordinator.db, decision.txt` },
  ...LOG_FLAGS,
  ...TRUST_FLAGS,
} as const

export const SERVE_FLAGS = {
  port: { value: 'PORT', default: '8000', help: 'the port of the HTTP API' },
  host: { value: 'HOST', default: '0.0.0.0', help: 'the address to bind' },
  participant: {
    value: '[NAME=]host:port',
    multiple: true,
    default: ENV_PEERS,
    help: 'a participant (or URL), optionally named for ops and --on; repeatable',
  },
  dir: BATCH_FLAGS.dir,
  timeout: TIMEOUT,
  'ack-wait': {
    value: 'MS',
    default: '1000',
    help: 'how long POST /transactions waits for acknowledgements; 0 answers at the commit point',
  },
  advertise: {
    value: 'URL',
    default: 'http://HOST:PORT',
    help: 'the URL participants in doubt use to reach this coordinator',
  },
  'client-tokens-file': {
    value: 'PATH',
    default: 'none',
    help: 'client tokens, one per line: each opens the API (never a participant)',
  },
  ...HISTORY_FLAGS,
  ...LOG_FLAGS,
  ...TRUST_FLAGS,
} as const

/** The default --timeout of the client: start and submit wait for a decision. */
export const CLIENT_TIMEOUT = { decide: 15_000, read: 5_000 }

export const CLIENT_FLAG_HELP = {
  coordinator: {
    value: 'URL',
    default: `$TWOPHASE_COORDINATOR, else ${DEFAULT_COORDINATOR}`,
    help: 'the coordinator service (a URL or host:port)',
  },
  json: { help: 'one JSON object on stdout instead of the human-readable lines' },
  timeout: {
    value: 'MS',
    default: `${CLIENT_TIMEOUT.decide} for start and submit, ${CLIENT_TIMEOUT.read} for the others`,
    help: 'how long to wait for each answer',
  },
  'token-file': {
    value: 'PATH',
    default: '$TWOPHASE_TOKEN_FILE, else none',
    help: 'a client token of the service (serve --client-tokens-file), instead of the secret',
  },
  ...TRUST_FLAGS,
  on: {
    value: 'P',
    default: 'start: every participant; get: 0',
    help:
      'start: after an operation, sends it only to participant P (index, name or URL; ' +
      'repeatable); get: the participant to read',
  },
} as const

const BATCH_USAGE =
  'coordinator.ts [TXN ...] [--participant host:port]... [--timeout MS] [--deliver-timeout MS] ' +
  `[--protocol 2pc|3pc] [--dir DIR] [--log-db URL] [--lease MS] ${TRUST_USAGE}`
const SERVE_USAGE =
  'coordinator.ts serve [--port PORT] [--host HOST] [--participant [NAME=]host:port]... ' +
  '[--dir DIR] [--timeout MS] [--ack-wait MS] [--advertise URL] [--client-tokens-file PATH] ' +
  `[--retain N] [--no-views] [--log-db URL] [--lease MS] ${TRUST_USAGE}`

/** The usage line of each client command, printed after its usage errors. */
export const CLIENT_USAGE_LINES: Readonly<Record<string, string>> = {
  start:
    'coordinator.ts start [ID] [2PC|3PC] [OP [--on P]...]... [--coordinator URL] [--json] ' +
    '[--timeout MS]',
  submit: 'coordinator.ts submit FILE|- [--coordinator URL] [--json] [--timeout MS]',
  show: 'coordinator.ts show ID [--coordinator URL] [--json] [--timeout MS]',
  status:
    'coordinator.ts status [--watch [--interval MS]] [--coordinator URL] [--json] [--timeout MS]',
  get: 'coordinator.ts get KEY [--on P] [--coordinator URL] [--json] [--timeout MS]',
}

/** Everything coordinator.ts does: batch mode, serve and the client, each with every flag. */
export function coordinatorHelp(): string {
  return [
    'usage: coordinator.ts [TXN ...] [flags]        batch mode: TXN ... (default t1 t2), then exit',
    '       coordinator.ts serve [flags]            the coordinator service (HTTP API)',
    '       coordinator.ts COMMAND ARGS [flags]     the client: start, submit, show, status, get',
    '       coordinator.ts help                     this text (so do --help and -h)',
    '',
    'batch mode flags:',
    ...flagLines(BATCH_FLAGS, false),
    '',
    'serve flags:',
    ...flagLines(SERVE_FLAGS, false),
    '',
    'client commands (they talk to a running service):',
    '  coordinator.ts start [ID] [2PC|3PC] [OP [--on P]...]...',
    '                                        run a transaction written on one line',
    '  coordinator.ts submit FILE|-          run a transaction given as JSON (the POST body)',
    '  coordinator.ts show ID                look a transaction up',
    '  coordinator.ts status                 the coordinator and each participant',
    '    [--watch [--interval MS]]           redrawn in place every MS (1000) until Ctrl-C',
    '  coordinator.ts get KEY [--on P]       read a key from participant P',
    '',
    'client flags:',
    ...flagLines(CLIENT_FLAG_HELP, false),
    '',
    'operations (keywords in any case; VALUE is JSON when it parses as JSON, else a string):',
    '  SET KEY VALUE | INSERT KEY VALUE | DELETE KEY | ADD KEY AMOUNT [MIN N] | CHECK KEY [VALUE]',
    '  SQL TEXT [PARAMS] [ROWS N]   (PARAMS a JSON array; a participant run with --allow-sql)',
    '  e.g. start TX2 ADD balance -100 MIN 0 --on 0 ADD balance 100 --on 1',
    '',
    'exit status: batch: 0 every decision recorded and acknowledged, 1 not, 2 usage error.',
    '  client: 0 committed (start, submit) or found (show, get, status); 1 aborted, not found,',
    '  no answer within --timeout, or the coordinator or a participant cannot be reached;',
    '  2 usage error, or a request the coordinator rejected as malformed; 3 a heuristic',
    '  outcome (start, submit, show): a participant refused the decision, its outcome differs',
  ].join('\n')
}

export const BATCH: Command<typeof BATCH_FLAGS> = {
  name: 'coordinator.ts',
  usage: BATCH_USAGE,
  flags: BATCH_FLAGS,
  positionals: true,
  help: coordinatorHelp,
}

export const SERVE: Command<typeof SERVE_FLAGS> = {
  name: 'coordinator.ts serve',
  usage: SERVE_USAGE,
  flags: SERVE_FLAGS,
  positionals: true,
  help: coordinatorHelp,
}
