// Long simulation runs of the real nodes: `bun run simulate -- --seeds 100000`, or one seed with
// its whole trace: `bun run simulate -- --seed 317 --trace` (add `--variant NAME` to run a
// broken variant; `--coordinators 3`: three coordinators on one shared log). Prints the faults
// injected, disk faults included, and with several coordinators their takeovers and fencings.
import { flagLines, parseCommand, type Command } from '../lib/cli/flags.ts'
import { fail } from '../lib/cli/args.ts'
import { BROKEN, BROKEN_3PC, BROKEN_SHARED } from '../testing/sim/broken.ts'
import { report, runSeed, type Counts } from '../testing/sim/run.ts'
import type { SharedCounts } from '../testing/sim/shared-cluster.ts'
import { integerFlag } from '../testing/util.ts'

const FLAGS = {
  seeds: { value: 'N', default: '10000', help: 'how many seeds to run' },
  start: { value: 'N', default: '1', help: 'the first seed to run' },
  seed: { value: 'N', help: 'run this one seed instead, keeping its whole trace' },
  trace: { help: "print the seed's trace (with --seed)" },
  protocol: {
    value: '2pc|3pc',
    default: '2pc',
    help:
      '3pc: three-phase commit on 3-5 participants, split partitions, and on even seeds the ' +
      'coordinator dead for good once the faults end',
  },
  coordinators: {
    value: '1|2|3',
    default: '1',
    help:
      '2 or 3: that many coordinator services on one simulated shared log, with leases, ' +
      'fencing and takeovers, stalls and database outages (two-phase commit)',
  },
  variant: {
    value: 'NAME',
    default: '$VARIANT, else none: the real protocol',
    help:
      `run a deliberately broken variant: ${Object.keys(BROKEN).join(', ')}; with --protocol ` +
      `3pc: ${Object.keys(BROKEN_3PC).join(', ')}; with --coordinators 2 or 3: ` +
      Object.keys(BROKEN_SHARED).join(', '),
  },
} as const

const USAGE =
  'scripts/simulate.ts [--seeds N] [--start N] [--seed N [--trace]] [--protocol 2pc|3pc] ' +
  '[--coordinators N] [--variant NAME]'

const SIMULATE: Command<typeof FLAGS> = {
  name: 'scripts/simulate.ts',
  usage: USAGE,
  flags: FLAGS,
  help: () =>
    [
      `usage: ${USAGE}`,
      '       (or: npm run simulate -- FLAGS)',
      '',
      'Runs the deterministic simulator over the real nodes, seed after seed, and prints the',
      'faults it injected; the first seed that breaks an invariant is reported.',
      '',
      'flags:',
      ...flagLines(FLAGS),
      '',
      'exit status: 0 every seed ok, 1 a seed broke an invariant, 2 usage error',
    ].join('\n'),
}

let values: ReturnType<typeof parseCommand<typeof FLAGS>>['values']
try {
  values = parseCommand(Bun.argv.slice(2), SIMULATE).values
} catch (error) {
  fail(error)
}

const kind = values.protocol ?? '2pc'
if (kind !== '2pc' && kind !== '3pc') {
  console.error(`error: invalid --protocol ${JSON.stringify(kind)}: expected 2pc or 3pc`)
  process.exit(2)
}
const threePhase = kind === '3pc'
const coordinators = integerFlag(values.coordinators, 1, 'coordinators')
if (coordinators > 3 || (coordinators > 1 && threePhase)) {
  console.error('error: --coordinators takes 1, 2 or 3, with two-phase commit')
  process.exit(2)
}
const several = coordinators > 1 ? coordinators : 0
const variants = several ? BROKEN_SHARED : threePhase ? BROKEN_3PC : BROKEN
const variant = values.variant ?? Bun.env.VARIANT
const protocol = variant ? variants[variant] : undefined
if (variant && !protocol) {
  console.error(`error: unknown variant ${variant}; known: ${Object.keys(variants).join(', ')}`)
  process.exit(2)
}

if (values.seed !== undefined) {
  const seed = integerFlag(values.seed, 1, 'seed', 0)
  const result = await runSeed(seed, {
    protocol,
    fullTrace: true,
    threePhase,
    coordinators: several,
  })
  if (values.trace) console.log(result.trace.join('\n'))
  console.log(result.ok ? `seed ${result.seed}: ok` : report(result, variant, threePhase, several))
  process.exit(result.ok ? 0 : 1)
}

const count = integerFlag(values.seeds, 10000, 'seeds')
const start = integerFlag(values.start, 1, 'start', 0)
const totals: Counts = {
  crashes: 0,
  drops: 0,
  duplicates: 0,
  partitions: 0,
  diskFaults: 0,
  stalls: 0,
  failedWrites: 0,
  steps: 0,
}
const shared: SharedCounts = {
  takeovers: 0,
  fencings: 0,
  stalls: 0,
  dbOutages: 0,
  dbCuts: 0,
  dbFailed: 0,
  retries: 0,
}
const began = performance.now()
for (let seed = start; seed < start + count; seed++) {
  const result = await runSeed(seed, { protocol, threePhase, coordinators: several })
  for (const key of Object.keys(totals) as (keyof Counts)[]) totals[key] += result.counts[key]
  for (const key of Object.keys(shared) as (keyof SharedCounts)[]) {
    shared[key] += result.shared?.[key] ?? 0
  }
  if (!result.ok) {
    console.log(report(result, variant, threePhase, several))
    process.exit(1)
  }
  if ((seed - start + 1) % 1000 === 0) console.log(`${seed - start + 1} seeds ok`)
}
const seconds = (performance.now() - began) / 1000
console.log(
  `${count} seeds ok in ${seconds.toFixed(1)} s (${Math.round(count / seconds)} seeds/s): ` +
    `${totals.crashes} crashes, ${totals.drops} drops, ${totals.duplicates} duplicates, ` +
    `${totals.partitions} partitions, ${totals.diskFaults} failing disks ` +
    `(${totals.failedWrites} failed writes), ${totals.stalls} stalled disks, ` +
    `${totals.steps} steps`,
)
if (several) {
  console.log(
    `${several} coordinators: ${shared.takeovers} takeovers, ${shared.fencings} fencings, ` +
      `${shared.stalls} stalls, ${shared.dbOutages} database outages, ${shared.dbCuts} ` +
      `coordinators cut off from it (${shared.dbFailed} failed statements), ` +
      `${shared.retries} client retries at another coordinator`,
  )
}
