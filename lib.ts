// What participant.ts and coordinator.ts share. The protocol core (lib/core.ts) is pure; the
// rest are the effectful helpers the two shells are built from.
//
// Not re-exported here, because loading them costs more than a batch coordinator's whole run:
// the HTTP layer on Hono (lib/http-app.ts, lib/coordinator-api.ts), the client
// (lib/client.ts) and PostgreSQL (lib/store/pg-store.ts, lib/pg-cluster.ts). The entry script
// that needs one imports it itself, the optional ones only when they are used.
export * from './lib/core.ts'
export * from './lib/atomic-file.ts'
export * from './lib/log.ts'
export * from './lib/keyed-queue.ts'
export * from './lib/failpoint.ts'
export * from './lib/cli.ts'
export * from './lib/participant-node.ts'
export * from './lib/coordinator-node.ts'
export * from './lib/in-doubt.ts'
export * from './lib/resolve.ts'
export * from './lib/store/store.ts'
export * from './lib/store/sqlite-store.ts'
export * from './lib/messages.ts'
