-- wrk script for benchmarks/bench_webhooks.py: open-loop signed HostPMS webhooks.
--
--   wrk -t T -c C -d D --timeout 10s -s benchmarks/webhook_load.lua URL -- REQUESTS_FILE RATE
--
-- REQUESTS_FILE holds one pre-signed delivery per line, "path<TAB>timestamp<TAB>signature<TAB>body"
-- (wrk's LuaJIT has no HMAC). Thread i of T sends lines i, i+T, i+2T, ... in order, each at
-- its scheduled time (RATE/T per second per thread, so a slow answer does not slow the
-- sending down as long as connections are free), and stops once every line is answered.
-- done() prints one JSON line, prefixed "RESULT ", that the Python script parses;
-- "sending_ms" runs from the first request sent to the last answer received.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clock_id, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local NEVER_MS = 3600 * 1000
local now_buffer = ffi.new("bench_timespec")

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, now_buffer)
  return tonumber(now_buffer.tv_sec) * 1000 + tonumber(now_buffer.tv_nsec) / 1e6
end

-- Main state: number the threads.
local threads = {}

function setup(thread)
  thread:set("thread_index", #threads)
  table.insert(threads, thread)
end

-- Thread state.
local requests = {}
local interval_ms, started_ms
local scheduled, sent = 0, 0
answered, accepted, duplicate, in_flight, other = 0, 0, 0, 0, 0
first_sent_ms, last_answered_ms = nil, nil

function init(args)
  local path, rate, thread_count = args[1], tonumber(args[2]), tonumber(args[3])
  local line_number = 0
  for line in io.lines(path) do
    if line_number % thread_count == thread_index then
      local url_path, timestamp, signature, body = line:match("^([^\t]+)\t([^\t]+)\t([^\t]+)\t(.*)$")
      local headers = {
        ["Content-Type"] = "application/json",
        ["X-HostPMS-Timestamp"] = timestamp,
        ["X-HostPMS-Signature"] = signature,
      }
      table.insert(requests, wrk.format("POST", url_path, headers, body))
    end
    line_number = line_number + 1
  end
  interval_ms = 1000 * thread_count / rate
end

function delay()
  -- Each call takes the next send slot; slots past the last request never come.
  if scheduled >= #requests then
    return NEVER_MS
  end
  started_ms = started_ms or now_ms()
  local due = started_ms + scheduled * interval_ms
  scheduled = scheduled + 1
  return math.max(0, math.floor(due - now_ms()))
end

function request()
  -- wrk calls request() once before the run to check what it returns; every real call
  -- comes after delay() has taken a slot. That check must not use up a delivery.
  if scheduled == 0 then
    return requests[1]
  end
  first_sent_ms = first_sent_ms or now_ms()
  sent = sent + 1
  return requests[sent]
end

function response(status, headers, body)
  answered = answered + 1
  last_answered_ms = now_ms()
  if status == 200 and body:find('"accepted"', 1, true) then
    accepted = accepted + 1
  elseif status == 200 and body:find('"duplicate"', 1, true) then
    duplicate = duplicate + 1
  elseif status == 409 then
    in_flight = in_flight + 1
  else
    other = other + 1
  end
  if answered >= #requests then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests_stats)
  local counts = { answered = 0, accepted = 0, duplicate = 0, in_flight = 0, other = 0 }
  local first_ms, last_ms = math.huge, 0
  for _, thread in ipairs(threads) do
    for name, _ in pairs(counts) do
      counts[name] = counts[name] + thread:get(name)
    end
    first_ms = math.min(first_ms, thread:get("first_sent_ms") or math.huge)
    last_ms = math.max(last_ms, thread:get("last_answered_ms") or 0)
  end
  local errors = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "sending_ms": %.1f, "p50_us": %d, "p95_us": %d, "p99_us": %d, "max_us": %d,'
      .. ' "mean_us": %.1f, "errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d},'
      .. ' "answered": %d, "accepted": %d, "duplicate": %d, "in_flight": %d, "other": %d}\n',
    summary.requests, summary.duration, last_ms - first_ms,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max, latency.mean,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    counts.answered, counts.accepted, counts.duplicate, counts.in_flight, counts.other
  ))
end
