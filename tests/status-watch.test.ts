// `coordinator.ts status --watch`: the status redrawn in place (the screen cleared, the picture
// drawn from the top) every --interval ms, on through a coordinator that stops answering, until
// SIGINT.
import { afterEach, expect, test } from 'bun:test'
import { REDRAW } from '../lib/cli/watch.ts'
import { COORDINATOR, cleanEnv } from '../testing/nodes.ts'
import {
  cleanup,
  kill,
  postJson,
  runCoordinator,
  startCoordinatorService,
  startParticipant,
  tempDir,
  waitFor,
} from '../testing/processes.ts'

afterEach(cleanup)

/** `status --watch` with its output read as it comes, frame by frame. */
function watchStatus(url: string) {
  const args = ['status', '--watch', '--interval', '150', '--coordinator', url]
  const proc = Bun.spawn([...COORDINATOR, ...args], {
    env: cleanEnv(),
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  })
  let text = ''
  void (async () => {
    const decoder = new TextDecoder()
    for await (const chunk of proc.stdout) text += decoder.decode(chunk)
  })()
  const frames = () => text.split(REDRAW).slice(1)
  return { proc, frames }
}

test('status --watch redraws the picture in place as transactions run', async () => {
  const p0 = await startParticipant(tempDir())
  const service = await startCoordinatorService(tempDir(), { participants: [p0.url] })
  const { proc, frames } = watchStatus(service.url)
  try {
    await waitFor(() => frames().some((f) => f.includes('0 commit')))
    const first = frames().length
    expect(frames()[0]).toStartWith(`coordinator ${service.url}: 0 commit, 0 abort`)
    expect(frames()[0]).toContain(`participant 0 ${p0.url}: 0 committed`)
    await postJson(`${service.url}/transactions`, { id: 'w1' })
    // A later frame, drawn over the first, shows the commit.
    await waitFor(() => frames().some((f) => f.includes('1 commit, 0 abort')))
    expect(frames().length).toBeGreaterThan(first)
    await kill(p0)
    await waitFor(() => frames().some((f) => f.includes(`participant 0 ${p0.url}: unreachable`)))
    await kill(service)
    await waitFor(() =>
      frames().some((f) => f.startsWith(`coordinator ${service.url}: `) && !f.includes('commit')),
    )
    const seen = frames().length
    await waitFor(() => frames().length > seen) // and it goes on
  } finally {
    proc.kill('SIGINT')
  }
  expect(await proc.exited).toBe(0)
})

test('status --watch refuses an interval under 100 ms with one line and status 2', async () => {
  const run = await runCoordinator(tempDir(), ['status', '--watch', '--interval', '5'])
  expect(run.code).toBe(2)
  expect(run.stderr).toContain('invalid --interval "5": expected milliseconds >= 100')
  expect(run.stdout).toBe('')
})
