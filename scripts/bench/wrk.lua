-- The bench's load generator under wrk (`bun run bench -- --client wrk`): one thread, one
-- connection per concurrent client, each sending its next transaction when the last is
-- answered. Arguments: a file with one request body per line, then how many answers to wait
-- for. The file holds more bodies than that (one more per connection), so the requests still
-- in flight at the end are real transactions too. After the last answer needed it says so on
-- stderr and stops; the bench then interrupts wrk, which prints one JSON line (done).

-- Globals, not locals: done() runs in another Lua state and reads these with thread:get.
answered = 0
commits = 0

local bodies = {}
local needed = 0
local sent = 0

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do
    bodies[#bodies + 1] = line
  end
  needed = tonumber(args[2])
end

function request()
  sent = sent + 1
  -- Past the end only if connections were lost and reopened (each reopening sends again):
  -- the last body then goes again, and the coordinator answers it as the transaction it is.
  local body = bodies[sent] or bodies[#bodies]
  return wrk.format("POST", "/transactions", { ["Content-Type"] = "application/json" }, body)
end

function response(status, headers, body)
  -- Answers that arrive in the same turn of wrk's loop as the last one needed are not counted.
  if answered == needed then
    return
  end
  answered = answered + 1
  if status == 200 and string.find(body, '"decision":"commit"', 1, true) then
    commits = commits + 1
  end
  if answered == needed then
    io.stderr:write("answered\n")
    io.stderr:flush()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local t = threads[1]
  local errors = summary.errors
  io.write(string.format(
    '{"answered":%d,"commits":%d,"us":%d,"p50":%d,"p99":%d,"max":%d,"errors":%d}\n',
    t:get("answered"), t:get("commits"), summary.duration,
    latency:percentile(50), latency:percentile(99), latency.max,
    errors.connect + errors.read + errors.write + errors.status + errors.timeout))
end
