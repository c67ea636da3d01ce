// The pure protocol core: no I/O, no clock, no Math.random. See the files it re-exports.
export * from './core/types.ts'
export * from './core/backoff.ts'
export * from './core/txn-id.ts'
export * from './core/votes.ts'
export * from './core/participant.ts'
export * from './core/coordinator.ts'
export * from './core/ops.ts'
export * from './core/termination.ts'
