// What participant.ts and coordinator.ts share. The layers of lib/ (see docs/architecture.md):
// core (the pure protocol), wire (the one codec of every message), store (where data and logs
// live), node (the nodes' action loops), http (the Hono apps), cli (flags and the client).
//
// Not re-exported here, because loading them costs more than a batch coordinator's whole run:
// the HTTP layer on Hono (lib/http/), the client (lib/cli/client.ts) and PostgreSQL
// (lib/store/pg-store.ts, lib/store/pg-cluster.ts). The entry script that needs one imports it
// itself, the optional ones only when they are used.
export * from './lib/core/index.ts'
export * from './lib/store/atomic-file.ts'
export * from './lib/store/log.ts'
export * from './lib/store/failpoint.ts'
export * from './lib/store/store.ts'
export * from './lib/store/sqlite-store.ts'
export * from './lib/node/keyed-queue.ts'
export * from './lib/node/participant-node.ts'
export * from './lib/node/coordinator-node.ts'
export * from './lib/node/sender.ts'
export * from './lib/node/ports.ts'
export * from './lib/node/batch.ts'
export { fail, parseMs, parsePort, participantUrl, namedParticipant } from './lib/cli/args.ts'
export { participantsFromEnv, isClientCommand, historyOf, type History } from './lib/cli/args.ts'
export * from './lib/cli/resolve.ts'
