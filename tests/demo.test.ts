// The README's first command: `npm run demo` runs the exercise and says PASS.
import { expect, test } from 'bun:test'
import { join } from 'node:path'
import { ROOT } from '../testing/nodes.ts'

test('the demo runs the classic exercise and reports PASS with exit status 0', async () => {
  const proc = Bun.spawn([process.execPath, join(ROOT, 'scripts/demo.ts')], {
    stdout: 'pipe',
    stderr: 'pipe',
  })
  const [stdout, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited])
  expect(code).toBe(0)
  expect(stdout).toContain('coordinator/decision.txt:\n  t1=commit\n  t2=abort\n')
  expect(stdout).toContain('participant1/state.txt:\n  t1=committed\n  t2=aborted\n')
  expect(stdout.trim().split('\n').at(-1)).toStartWith('PASS')
})
