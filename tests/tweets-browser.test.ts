// The tweet store's page in a real Chromium (from npm: @sparticuz/chromium, driven by
// playwright-core): log in, post, update, delete and log out; and two pages updating one tweet
// at once, where the second is told that the tweet is being modified.
// UPDATE_SCREENSHOTS=1 keeps the picture in docs/tweets.png.
import { afterAll, afterEach, beforeAll, expect, test } from 'bun:test'
import { join } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { launchBrowser } from '../testing/browser.ts'
import { ROOT, spawnNode, type Node } from '../testing/nodes.ts'
import {
  cleanup,
  getJson,
  startCoordinatorService,
  startParticipant,
  tempDir,
  waitFor,
} from '../testing/processes.ts'

let browser: Browser
const ours: Node[] = []
beforeAll(async () => {
  browser = await launchBrowser()
})
afterAll(async () => {
  await browser.close()
})
afterEach(async () => {
  for (const n of ours.splice(0)) {
    n.proc.kill('SIGKILL')
    await n.proc.exited
  }
  await cleanup()
})

async function tweetStore() {
  const workers = [await startParticipant(tempDir()), await startParticipant(tempDir())]
  const participants = workers.map((w) => w.url)
  const service = await startCoordinatorService(tempDir(), { participants })
  const command = [process.execPath, join(ROOT, 'examples', 'tweets.ts')]
  const tweets = await spawnNode(
    [...command, '--port', '0', '--coordinator', service.url],
    ROOT,
    {},
  )
  ours.push(tweets)
  return { workers, url: tweets.url }
}

/** A page of its own (its own cookies), logged in as `name`. */
async function loggedIn(url: string, name: string): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 900, height: 700 } })
  const page = await context.newPage()
  await page.goto(`${url}/`)
  await page.fill('#username', name)
  await page.click('#login')
  await page.waitForSelector(`#who:text("${name}")`)
  return page
}

const message = (page: Page) => page.locator('#message')

async function post(page: Page, content: string): Promise<string> {
  await page.fill('#content', content)
  await page.click('#post')
  const item = page.locator('.tweet', { hasText: content })
  await item.waitFor()
  return (await item.getAttribute('data-id'))!
}

test('log in, post, update, delete, log out', async () => {
  const { url } = await tweetStore()
  const page = await loggedIn(url, 'alice')
  const id = await post(page, 'hello from the browser')
  expect(await message(page).textContent()).toBe('posted')
  const tweet = page.locator(`.tweet[data-id="${id}"]`)
  expect(await tweet.locator('.author').textContent()).toBe('alice')

  await tweet.locator('.edit').click()
  await tweet.locator('.edit-content').fill('hello, edited')
  await tweet.locator('.save').click()
  await page.waitForSelector(`.tweet[data-id="${id}"] .text:text("hello, edited")`)
  expect(await message(page).textContent()).toBe('saved')

  await tweet.locator('.delete').click()
  await page.waitForSelector(`.tweet[data-id="${id}"]`, { state: 'detached' })
  expect(await message(page).textContent()).toBe('deleted')

  await page.click('#logout')
  await page.waitForSelector('#login-form:visible')
  expect(await page.locator('#post-form').isVisible()).toBe(false)
  await page.context().close()
})

test('two pages update one tweet at once: the second is told it is being modified', async () => {
  const { workers, url } = await tweetStore()
  const first = await loggedIn(url, 'alice')
  await post(first, 'two workers, one transaction per write')
  const id = await post(first, 'version 1')
  const second = await loggedIn(url, 'alice')
  for (const [page, text] of [
    [first, 'from the first page'],
    [second, 'from the second page'],
  ] as const) {
    const tweet = page.locator(`.tweet[data-id="${id}"]`)
    await tweet.locator('.edit').click()
    await tweet.locator('.edit-content').fill(text)
  }
  // Worker 1 stopped: the first page's transaction is prepared on worker 0 (which holds the
  // tweet's lock) and waits for worker 1's vote while the second page saves.
  const stopped = workers[1]!.proc
  stopped.kill('SIGSTOP')
  try {
    await first.locator(`.tweet[data-id="${id}"] .save`).click()
    await waitFor(async () => {
      const status = await getJson(`${workers[0]!.url}/status`)
      return status.locks[`tweet:${id}`] !== undefined
    })
    await second.locator(`.tweet[data-id="${id}"] .save`).click()
    await second.waitForSelector('#message.error')
    expect(await message(second).textContent()).toBe(`tweet ${id} is being modified, try again`)
    if (process.env.UPDATE_SCREENSHOTS === '1') {
      await second.screenshot({ path: join(ROOT, 'docs', 'tweets.png'), fullPage: true })
    }
  } finally {
    stopped.kill('SIGCONT')
  }
  // The first page's save ends one way or the other once worker 1 answers.
  await first.waitForSelector('#message.ok, #message.error', { timeout: 15_000 })
  // Both workers reach the same outcome. Not necessarily by the time the page is answered: the
  // coordinator answers after every acknowledgement or after its --ack-wait (1 s), whichever
  // comes first, and worker 1, just woken, may take longer on a busy machine.
  const kv = async (w: Node) => (await getJson(`${w.url}/kv/tweet:${id}`)).value
  let held: unknown[] = []
  await waitFor(async () => {
    held = await Promise.all(workers.map(kv))
    return Bun.deepEquals(held[0], held[1])
  })
  expect((held[0] as { content: string }).content).not.toBe('from the second page')
  await first.context().close()
  await second.context().close()
})
