/** Thrown for bad command-line input or configuration: printed as one line, exit status 2.
 * Here, at the bottom of the layers, because nodes and commands alike refuse a bad setting. */
export class UsageError extends Error {}
