// What participant.ts and coordinator.ts share. The protocol core (lib/core.ts) is pure; the
// rest are the effectful helpers the two shells are built from.
export * from './lib/core.ts'
export * from './lib/atomic-file.ts'
export * from './lib/log.ts'
export * from './lib/keyed-queue.ts'
export * from './lib/failpoint.ts'
export * from './lib/cli.ts'
export * from './lib/http-app.ts'
export * from './lib/participant-node.ts'
export * from './lib/coordinator-node.ts'
export * from './lib/in-doubt.ts'
export * from './lib/resolve.ts'
export * from './lib/coordinator-api.ts'
