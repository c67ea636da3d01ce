// Long simulation runs of the real nodes: `bun run simulate -- --seeds 100000`, or one seed with
// its whole trace: `bun run simulate -- --seed 317 --trace` (add `--variant NAME` to run a
// broken variant). Prints the faults injected, disk faults included.
import { parseArgs } from 'node:util'
import { BROKEN } from '../testing/sim/broken.ts'
import { report, runSeed, type Counts } from '../testing/sim/run.ts'

const { values } = parseArgs({
  options: {
    seeds: { type: 'string' },
    start: { type: 'string' },
    seed: { type: 'string' },
    trace: { type: 'boolean' },
    variant: { type: 'string' },
  },
  strict: true,
})
const variant = values.variant ?? Bun.env.VARIANT
const protocol = variant ? BROKEN[variant] : undefined
if (variant && !protocol) {
  console.error(`error: unknown variant ${variant}; known: ${Object.keys(BROKEN).join(', ')}`)
  process.exit(2)
}

if (values.seed !== undefined) {
  const result = await runSeed(Number(values.seed), { protocol, fullTrace: true })
  if (values.trace) console.log(result.trace.join('\n'))
  console.log(result.ok ? `seed ${result.seed}: ok` : report(result, variant))
  process.exit(result.ok ? 0 : 1)
}

const count = Number(values.seeds ?? '10000')
const start = Number(values.start ?? '1')
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
const began = performance.now()
for (let seed = start; seed < start + count; seed++) {
  const result = await runSeed(seed, { protocol })
  for (const key of Object.keys(totals) as (keyof Counts)[]) totals[key] += result.counts[key]
  if (!result.ok) {
    console.log(report(result, variant))
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
