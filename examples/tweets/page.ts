// The tweet store's page: log in, post, edit and delete your tweets, and the feed (refreshed
// every two seconds). Plain HTML and a little script over the JSON API: no build step.
export const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>tweets on two workers</title>
<style>
  body { font: 15px system-ui, sans-serif; max-width: 40em; margin: 2em auto; color: #222; }
  h1 { font-size: 1.4em; } .muted { color: #777; font-size: .85em; }
  form, .bar { display: flex; gap: .5em; margin: .8em 0; }
  input, textarea { flex: 1; font: inherit; padding: .4em; }
  button { font: inherit; padding: .3em .8em; cursor: pointer; }
  #message { min-height: 1.4em; padding: .3em .6em; border-radius: 4px; }
  #message.error { background: #fde2e1; color: #8a1c16; }
  #message.ok { background: #e3f5e1; color: #1e5b18; }
  #feed { list-style: none; padding: 0; }
  .tweet { border-bottom: 1px solid #ddd; padding: .6em 0; }
  .tweet .author { font-weight: 600; margin-right: .5em; }
  .tweet .actions { margin-top: .3em; display: flex; gap: .4em; }
  [hidden] { display: none !important; }
</style>
</head>
<body>
<h1>tweets <span class="muted">each write is one two-phase transaction on both workers</span></h1>
<form id="login-form">
  <input id="username" placeholder="your name" autocomplete="username" maxlength="32">
  <button id="login">log in</button>
</form>
<div class="bar" id="session" hidden>
  <span>logged in as <b id="who"></b></span><button id="logout" type="button">log out</button>
</div>
<form id="post-form" hidden>
  <textarea id="content" rows="2" maxlength="280" placeholder="what is happening?"></textarea>
  <button id="post">post</button>
</form>
<div id="message" role="status"></div>
<ul id="feed"></ul>
<script>
const $ = (id) => document.getElementById(id)
let me = null
const drafts = new Map() // tweet id -> the text being edited

function say(text, ok) {
  $('message').textContent = text
  $('message').className = text ? (ok ? 'ok' : 'error') : ''
}

async function api(method, path, body) {
  const init = { method, headers: { 'content-type': 'application/json' } }
  if (body !== undefined) init.body = JSON.stringify(body)
  const response = await fetch(path, init)
  const json = await response.json().catch(() => ({ error: 'HTTP ' + response.status }))
  if (!response.ok) throw new Error(json.error || 'HTTP ' + response.status)
  return json
}

function showSession() {
  $('login-form').hidden = me !== null
  $('session').hidden = me === null
  $('post-form').hidden = me === null
  $('who').textContent = me || ''
}

function button(label, cls, onclick) {
  const b = document.createElement('button')
  b.type = 'button'; b.textContent = label; b.className = cls; b.onclick = onclick
  return b
}

function render(tweets) {
  const feed = $('feed')
  feed.replaceChildren(...tweets.map((t) => {
    const li = document.createElement('li')
    li.className = 'tweet'; li.dataset.id = t.id
    const who = document.createElement('span'); who.className = 'author'; who.textContent = t.author
    li.append(who)
    if (drafts.has(t.id)) {
      const input = document.createElement('input')
      input.className = 'edit-content'; input.value = drafts.get(t.id)
      input.oninput = () => drafts.set(t.id, input.value)
      li.append(input, button('save', 'save', () => save(t.id)))
    } else {
      const text = document.createElement('span')
      text.className = 'text'; text.textContent = t.content
      const when = document.createElement('span'); when.className = 'muted'
      const at = new Date(t.updated || t.created).toLocaleTimeString()
      when.textContent = ' ' + at + (t.updated ? ' (edited)' : '')
      li.append(text, when)
    }
    if (t.author === me) {
      const actions = document.createElement('div'); actions.className = 'actions'
      const edit = () => { drafts.set(t.id, t.content); refresh() }
      if (!drafts.has(t.id)) actions.append(button('edit', 'edit', edit))
      actions.append(button('delete', 'delete', () => remove(t.id)))
      li.append(actions)
    }
    return li
  }))
}

async function refresh() {
  try {
    render((await api('GET', '/api/tweets')).tweets)
  } catch (error) {
    say('cannot read the feed: ' + error.message)
  }
}

async function save(id) {
  try {
    await api('PUT', '/api/tweet/' + id, { content: drafts.get(id) })
    drafts.delete(id)
    say('saved', true)
  } catch (error) {
    say(error.message)
  }
  refresh()
}

async function remove(id) {
  try {
    await api('DELETE', '/api/tweet/' + id)
    drafts.delete(id)
    say('deleted', true)
  } catch (error) {
    say(error.message)
  }
  refresh()
}

$('login-form').onsubmit = async (event) => {
  event.preventDefault()
  try {
    me = (await api('POST', '/api/login', { username: $('username').value })).username
    say('')
  } catch (error) { say(error.message) }
  showSession(); refresh()
}
$('logout').onclick = async () => {
  await api('DELETE', '/api/login').catch(() => {})
  me = null; drafts.clear(); showSession(); say('logged out', true); refresh()
}
$('post-form').onsubmit = async (event) => {
  event.preventDefault()
  try {
    await api('POST', '/api/tweet', { content: $('content').value })
    $('content').value = ''
    say('posted', true)
  } catch (error) { say(error.message) }
  refresh()
}

api('GET', '/api/login').then((s) => { me = s.username; showSession(); refresh() })
// Not while a tweet is being edited: the input would be replaced under the cursor.
setInterval(() => document.activeElement?.className === 'edit-content' || refresh(), 2000)
</script>
</body>
</html>
`
