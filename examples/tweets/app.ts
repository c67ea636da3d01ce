// The tweet store's HTTP face: the page at GET /, and the JSON API under /api. Sessions are a
// random cookie kept in memory (no passwords: a name is enough); only a session writes, and only
// a tweet's author changes or deletes it.
import { Hono, type Context } from 'hono'
import { deleteCookie, getCookie, setCookie } from 'hono/cookie'
import { HTTPException } from 'hono/http-exception'
import { TweetStore, WriteRefused, type Tweet } from './store.ts'
import { PAGE } from './page.ts'

const USERNAME = /^[A-Za-z0-9_]{1,32}$/
const MAX_CONTENT = 280

export function createTweetsApp(store: TweetStore): Hono {
  const app = new Hono()
  const sessions = new Map<string, string>()
  const userOf = (c: Context) => sessions.get(getCookie(c, 'session') ?? '') ?? null
  const author = (c: Context) => {
    const user = userOf(c)
    if (user === null) throw refuse(401, 'log in first: POST /api/login {"username"}')
    return user
  }
  app.onError((error, c) => {
    if (error instanceof HTTPException) return c.json({ error: error.message }, error.status)
    if (error instanceof WriteRefused) return c.json({ error: error.message }, error.status)
    console.error(`tweets: ${error}`)
    return c.json({ error: 'the tweet store failed to answer' }, 500)
  })
  app.get('/', (c) => c.html(PAGE))
  app.get('/api/login', (c) => c.json({ username: userOf(c) }))
  app.post('/api/login', async (c) => {
    const username = (await bodyOf(c)).username
    if (typeof username !== 'string' || !USERNAME.test(username)) {
      throw refuse(400, 'invalid "username": 1-32 letters, digits or _')
    }
    const token = crypto.randomUUID()
    sessions.set(token, username)
    setCookie(c, 'session', token, { httpOnly: true, sameSite: 'Strict', path: '/' })
    return c.json({ username })
  })
  app.delete('/api/login', (c) => {
    sessions.delete(getCookie(c, 'session') ?? '')
    deleteCookie(c, 'session', { path: '/' })
    return c.json({ username: null })
  })
  app.get('/api/tweets', async (c) => c.json({ tweets: await store.list() }))
  app.post('/api/tweet', async (c) => {
    const user = author(c)
    const content = contentOf(await bodyOf(c))
    const id = crypto.randomUUID().slice(0, 13).replace('-', '')
    const tweet = { id, author: user, content, created: new Date().toISOString(), updated: null }
    await store.insert(tweet)
    return c.json({ tweet }, 201)
  })
  app.put('/api/tweet/:id', async (c) => {
    const before = await own(store, c, author(c))
    const content = contentOf(await bodyOf(c))
    const after: Tweet = { ...before, content, updated: new Date().toISOString() }
    await store.update(before, after)
    return c.json({ tweet: after })
  })
  app.delete('/api/tweet/:id', async (c) => {
    const before = await own(store, c, author(c))
    await store.remove(before)
    return c.json({ deleted: before.id })
  })
  app.notFound((c) => c.json({ error: `no such endpoint: ${c.req.method} ${c.req.path}` }, 404))
  return app
}

/** The tweet the path names, as committed, if `user` wrote it. */
async function own(store: TweetStore, c: Context, user: string): Promise<Tweet> {
  const id = c.req.param('id') ?? ''
  if (!/^[a-z0-9]{1,32}$/.test(id)) throw refuse(400, `invalid tweet id ${JSON.stringify(id)}`)
  const tweet = await store.get(id)
  if (tweet === null) throw refuse(404, `no tweet ${id}`)
  if (tweet.author !== user) throw refuse(403, `tweet ${id} is ${tweet.author}'s, not yours`)
  return tweet
}

function contentOf(body: Record<string, unknown>): string {
  const content = body.content
  if (typeof content !== 'string' || content.trim() === '') {
    throw refuse(400, 'invalid "content": expected a non-empty string')
  }
  if ([...content].length > MAX_CONTENT) {
    throw refuse(400, `invalid "content": more than ${MAX_CONTENT} characters`)
  }
  return content
}

async function bodyOf(c: Context): Promise<Record<string, unknown>> {
  let body: unknown
  try {
    body = await c.req.json()
  } catch {
    throw refuse(400, 'the body is not JSON')
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw refuse(400, 'the body must be a JSON object')
  }
  return body as Record<string, unknown>
}

function refuse(status: 400 | 401 | 403 | 404, message: string): HTTPException {
  return new HTTPException(status, { message })
}
