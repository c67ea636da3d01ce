// The package's entry (`import { … } from "twophase"`): the documented, versioned surface of
// docs/resources.md. What is not exported here is internal and may change in any release.
export { RESOURCE_API_VERSION } from './resource/resource.ts'
export type { MaybePromise, Resource, ResourceVote } from './resource/resource.ts'
export { serveResource, resourceOptionsFromArgv, RESOURCE_FLAGS } from './resource/serve.ts'
export type { ResourceParticipant, ResourceParticipantOptions } from './resource/serve.ts'
export { ResourceStore } from './resource/resource-store.ts'
export { keyOps, sqlOps } from './core/ops.ts'
export type { Json, KeyOp, Op, SqlOp } from './core/ops.ts'
export { UsageError } from './core/errors.ts'
