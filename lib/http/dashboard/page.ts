// The dashboard's page: plain HTML and a script (no build step) that reads GET /events and draws
// with uPlot, served from the package under /assets. With authentication on, it asks for a
// client token and sends it with each request (EventSource cannot send one, so the stream is
// read with fetch).
export const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>twophase coordinator</title>
<link rel="stylesheet" href="/assets/uPlot.min.css">
<script src="/assets/uPlot.iife.min.js"></script>
<style>
  body { font: 14px system-ui, sans-serif; margin: 1.2em 2em; color: #222; }
  h1 { font-size: 1.3em; margin: 0 0 .6em; } h2 { font-size: 1.05em; margin: 1.2em 0 .4em; }
  .muted { color: #777; } #state.down { color: #b3261e; }
  .tiles { display: flex; gap: 1em; flex-wrap: wrap; }
  .tile { border: 1px solid #ddd; border-radius: 6px; padding: .5em .9em; min-width: 7em; }
  .tile b { display: block; font-size: 1.5em; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: .25em .6em; border-bottom: 1px solid #eee; }
  tr.down td { background: #fde2e1; } tr.down .reach { color: #b3261e; font-weight: 600; }
  tr.heuristic td { background: #fff1c2; } tr.in-doubt td { background: #e8eefc; }
  tr.doubting td { background: #e8eefc; }
  #recent tr[data-txn] { cursor: pointer; } #recent tr[data-txn]:hover td { background: #f4f4f4; }
  .yes { color: #1e6b18; } .no { color: #b3261e; } .none { color: #999; }
  #timeline { font-family: ui-monospace, monospace; white-space: pre; }
  #token-form[hidden] { display: none; }
  .columns { display: grid; grid-template-columns: 1fr 1fr; gap: 2em; }
</style>
</head>
<body>
<h1>twophase coordinator <span id="state" class="muted">connecting…</span></h1>
<form id="token-form" hidden>
  <label>This coordinator needs a client token:
    <input id="token" type="password" size="40" autocomplete="off"></label>
  <button>connect</button>
</form>
<div class="tiles">
  <div class="tile">committed/s<b id="commit-rate">0</b></div>
  <div class="tile">aborted/s<b id="abort-rate">0</b></div>
  <div class="tile">committed<b id="commit-total">0</b></div>
  <div class="tile">aborted<b id="abort-total">0</b></div>
  <div class="tile">preparing<b id="preparing">0</b></div>
  <div class="tile">precommitting<b id="precommitting">0</b></div>
  <div class="tile">delivering<b id="deciding">0</b></div>
</div>
<h2>transactions per second, the last five minutes</h2>
<div id="chart"></div>
<h2>participants</h2>
<table id="participants"><thead><tr><th>participant</th><th>reachable</th><th>latency</th>
<th>prepared</th><th>in doubt</th><th>locks held</th></tr></thead><tbody></tbody></table>
<div class="columns">
<div>
<h2>recent transactions <span class="muted">(click one for its timeline)</span></h2>
<table id="recent"><thead><tr><th>transaction</th><th>decision</th><th>phase</th>
<th>votes</th></tr></thead><tbody></tbody></table>
<h2>heuristic outcomes</h2>
<table id="heuristic"><tbody></tbody></table>
</div>
<div>
<h2>timeline <span id="timeline-of" class="muted"></span></h2>
<div id="timeline" class="muted">no transaction chosen</div>
</div>
</div>
<script>
const $ = (id) => document.getElementById(id)
const POINTS = 1200 // five minutes at four summaries a second
const series = [[], [], []]
let token = sessionStorage.getItem('twophase-token') || ''
let plot = null

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => '&#' + c.charCodeAt(0) + ';')
const headers = () => (token ? { authorization: 'Bearer ' + token } : {})

function chart() {
  const width = Math.max(400, $('chart').clientWidth || 800)
  plot = new uPlot({
    width, height: 200,
    series: [{}, { label: 'committed/s', stroke: '#1e6b18', width: 2 },
      { label: 'aborted/s', stroke: '#b3261e', width: 2 }],
    axes: [{}, { size: 60 }],
  }, series, $('chart'))
}

function votesOf(t) {
  return Object.entries(t.votes).map(([p, v]) => {
    const reason = t.reasons[p] ? ': ' + t.reasons[p] : ''
    const refused = t.refusals[p] ? ' (refused: ' + t.refusals[p] + ')' : ''
    return '<span class="' + (v ? esc(v) : 'none') + '" title="' + esc(p) + '">' +
      esc(v || 'no vote') + esc(reason + refused) + '</span>'
  }).join(', ')
}

function txnRow(t) {
  // Heuristic: a participant refused the decision. In doubt: decided, not everyone knows yet.
  const heuristic = Object.keys(t.refusals).length > 0
  const cls = heuristic ? 'heuristic' : t.phase === 'deciding' ? 'in-doubt' : ''
  return '<tr data-txn="' + esc(t.id) + '" class="' + cls + '"><td>' + esc(t.id) + '</td><td>' +
    esc(t.decision || 'undecided') + '</td><td>' + esc(t.phase) + '</td><td>' + votesOf(t) +
    '</td></tr>'
}

function participantRow(p) {
  const doubt = p.inDoubt.map((d) => esc(d.txn) + ' (' + d.waitedMs + ' ms)').join(', ')
  const reach = p.reachable === null ? 'probing…' : p.reachable ? 'yes' : 'unreachable'
  const cls = p.reachable === false ? 'down' : p.inDoubt.length ? 'doubting' : ''
  return '<tr data-url="' + esc(p.url) + '" class="' + cls +
    '"><td>' + esc(p.url) + '</td><td class="reach">' + reach + '</td><td>' +
    (p.ms === null ? '–' : p.ms + ' ms') + '</td><td>' + p.prepared + '</td><td>' +
    (p.inDoubt.length ? doubt : '0') + '</td><td>' + p.locks + '</td></tr>'
}

function update(s) {
  $('commit-rate').textContent = Math.round(s.rate.commit)
  $('abort-rate').textContent = Math.round(s.rate.abort)
  $('commit-total').textContent = s.totals.commit
  $('abort-total').textContent = s.totals.abort
  for (const phase of ['preparing', 'precommitting', 'deciding']) {
    $(phase).textContent = s.inFlight[phase]
  }
  series[0].push(s.at / 1000); series[1].push(s.rate.commit); series[2].push(s.rate.abort)
  if (series[0].length > POINTS) for (const line of series) line.shift()
  if (plot) plot.setData(series)
  $('participants').tBodies[0].innerHTML = s.participants.map(participantRow).join('')
  $('recent').tBodies[0].innerHTML = s.recent.map(txnRow).join('')
  $('heuristic').tBodies[0].innerHTML =
    s.heuristic.length ? s.heuristic.map(txnRow).join('') : '<tr><td class="muted">none</td></tr>'
}

async function showTimeline(id) {
  $('timeline-of').textContent = id
  const response = await fetch('/transactions/' + encodeURIComponent(id) + '/timeline',
    { headers: headers() })
  const body = await response.json()
  if (!response.ok) { $('timeline').textContent = body.error; return }
  $('timeline').classList.remove('muted')
  $('timeline').textContent = body.entries.map((e) => {
    const ms = ('+' + (e.at - body.began) + ' ms').padStart(10)
    const who = e.participant ? ' ' + e.participant : ''
    return ms + '  ' + e.event + who + (e.detail ? ': ' + e.detail : '')
  }).join('\\n')
}

$('recent').onclick = (event) => {
  const row = event.target.closest('tr[data-txn]')
  if (row) showTimeline(row.dataset.txn)
}
$('token-form').onsubmit = (event) => {
  event.preventDefault()
  token = $('token').value.trim()
  sessionStorage.setItem('twophase-token', token)
  $('token-form').hidden = true
  connect()
}

function state(text, down) {
  $('state').textContent = text
  $('state').className = down ? 'down' : 'muted'
}

/** Reads the SSE stream: one JSON summary per event. Reconnects when it ends. */
async function connect() {
  let response
  try {
    response = await fetch('/events', { headers: headers() })
  } catch {
    state('unreachable, retrying', true); return setTimeout(connect, 1000)
  }
  if (response.status === 401) {
    state('needs a client token', true); $('token-form').hidden = false; return
  }
  state('live')
  const reader = response.body.getReader()
  const decoder = new TextDecoder()
  let buffer = ''
  try {
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      buffer += decoder.decode(value, { stream: true })
      let end
      while ((end = buffer.indexOf('\\n\\n')) >= 0) {
        const data = buffer.slice(0, end).split('\\n').filter((l) => l.startsWith('data:'))
          .map((l) => l.slice(5).trimStart()).join('\\n')
        buffer = buffer.slice(end + 2)
        if (data) update(JSON.parse(data))
      }
    }
  } catch {}
  state('disconnected, retrying', true)
  setTimeout(connect, 1000)
}

try {
  chart()
} catch (error) {
  $('chart').textContent = 'no chart: ' + error.message // the tables work without it
}
connect()
</script>
</body>
</html>
`
