// Builds one self-contained executable per node role: dist/participant and dist/coordinator.
//   bun scripts/build.ts [--outdir dist]
import { parseArgs } from 'node:util'
import { join, resolve } from 'node:path'
import { ROOT, build } from '../testing/build.ts'

const { values } = parseArgs({ options: { outdir: { type: 'string' } }, strict: true })
for (const path of await build(resolve(values.outdir ?? join(ROOT, 'dist')))) {
  console.log(`built ${path}`)
}
