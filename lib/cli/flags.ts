// Flags declared once with their usage: each command names its flags, the value each takes, its
// default and what it does. `--help` (or `-h`) prints them all and exits 0; a flag the command
// does not know (or one missing its value) is one line of error, then the usage line, exit 2.
import { parseArgs } from 'node:util'
import { UsageError } from '../core/errors.ts'

export type Flag = {
  /** What the flag's value is called (`MS`, `DIR`); a flag without one is a switch. */
  value?: string
  multiple?: boolean
  /** The default as the help shows it; a switch is off unless given. */
  default?: string
  help: string
}

export type Flags = Readonly<Record<string, Flag>>

export type Command<F extends Flags = Flags> = {
  /** How the command is typed, for the hint after an error: `participant.ts`. */
  name: string
  /** The usage line printed after a usage error. */
  usage: string
  flags: F
  positionals?: boolean
  /** The whole help text, printed by --help. */
  help: () => string
}

type ValueOf<F extends Flag> = F extends { multiple: true }
  ? string[]
  : F extends { value: string }
    ? string
    : boolean

export type Values<F extends Flags> = { -readonly [K in keyof F]?: ValueOf<F[K]> }

/** A usage error that comes with the command's usage line, printed after it. */
export class FlagError extends UsageError {
  constructor(
    message: string,
    readonly usage: string,
  ) {
    super(message)
  }
}

/** Whether node:util's parseArgs threw `error`: a usage error in Node's own words. */
export function isParseArgsError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')
}

/** Node's message goes on with advice about `--`; its first sentence is the point. */
export function parseArgsMessage(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error)
  return message.split(/\.\s/)[0]!.replace(/^\w/, (c) => c.toLowerCase())
}

/** Parses `argv` as `command`'s flags. Prints the help and exits 0 on --help or -h; throws a
 * FlagError (the message, then the usage line) for a flag the command does not take. */
export function parseCommand<F extends Flags>(
  argv: readonly string[],
  command: Command<F>,
): { values: Values<F>; positionals: string[] } {
  const options: Record<
    string,
    { type: 'string' | 'boolean'; multiple?: boolean; short?: string }
  > = { help: { type: 'boolean', short: 'h' } }
  for (const [name, flag] of Object.entries(command.flags)) {
    options[name] = { type: flag.value ? 'string' : 'boolean', multiple: flag.multiple ?? false }
  }
  let parsed: ReturnType<typeof parseArgs>
  try {
    const allowPositionals = command.positionals ?? false
    parsed = parseArgs({ args: [...argv], options, allowPositionals, strict: true })
  } catch (error) {
    if (!isParseArgsError(error)) throw error
    throw new FlagError(
      `${parseArgsMessage(error)} (see: ${command.name} --help)`,
      usageOf(command),
    )
  }
  if (parsed.values.help) {
    console.log(command.help())
    process.exit(0)
  }
  return { values: parsed.values as Values<F>, positionals: parsed.positionals }
}

/** The usage line of `command` as a usage error prints it: one line, however long. */
export function usageOf(command: Command): string {
  return `usage: ${command.usage}`
}

/** The flags as help lines: `  --name VALUE  what it does (default: X)`, wrapped at 100. */
export function flagLines(flags: Flags, withHelp = true, width = 24): string[] {
  const lines: string[] = []
  for (const [name, flag] of Object.entries(flags)) {
    const head = `  --${name}${flag.value ? ` ${flag.value}` : ''}`
    const fallback = flag.default ?? (flag.value ? 'none' : 'off')
    const text = `${flag.help} (default: ${fallback})`
    const pad = head.length + 2 > width ? `${head}\n${' '.repeat(width)}` : head.padEnd(width)
    lines.push(...wrap(`${pad}${text}`, width))
  }
  if (withHelp) lines.push('  -h, --help'.padEnd(width) + 'print this help and exit')
  return lines
}

/** `text` broken at spaces (or before each `at`: ` [` for a usage line) into lines of at most
 * `max` columns, continued at `indent`. */
export function wrap(text: string, indent: number, max = 100, at = ' '): string[] {
  const out: string[] = []
  for (const line of text.split('\n')) {
    let rest = line
    while (rest.length > max) {
      const cut = rest.lastIndexOf(at, max - at.length + 1)
      if (cut <= indent) break
      out.push(rest.slice(0, cut))
      rest = ' '.repeat(indent) + rest.slice(cut + 1)
    }
    out.push(rest)
  }
  return out
}
