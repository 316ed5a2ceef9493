-- wrk script: POST to BENCH_PATH a body made from BENCH_BODY with "%s" replaced by a random line of
-- BENCH_LINES (a signed QR payload, a card number), and a fresh Idempotency-Key on every request.
-- Environment: BENCH_AUTH (Authorization header value, may be empty), BENCH_RESULT (file the summary is
-- written to as JSON).
local lines = {}
local thread_id = 0
local counter = 0
local threads = {}

function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(os.getenv("BENCH_LINES")) do
    lines[#lines + 1] = line
  end
  math.randomseed(os.time() + tid * 7919)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  local auth = os.getenv("BENCH_AUTH") or ""
  if auth ~= "" then wrk.headers["Authorization"] = auth end
  path = os.getenv("BENCH_PATH")
  template = os.getenv("BENCH_BODY")
  errors = 0
end

function request()
  counter = counter + 1
  wrk.headers["Idempotency-Key"] = string.format("wrk-%d-%d-%d", tid, counter, math.random(1e9))
  local line = lines[math.random(#lines)]
  return wrk.format(nil, path, nil, (template:gsub("%%s", function() return line end)))
end

function response(status, headers, body)
  if status ~= 201 then
    errors = errors + 1
    if errors <= 3 then io.stderr:write("unexpected " .. status .. ": " .. body .. "\n") end
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do bad = bad + (thread:get("errors") or 0) end
  local out = io.open(os.getenv("BENCH_RESULT"), "w")
  out:write(string.format(
    '{"requests": %d, "seconds": %.3f, "non_201": %d, "socket_errors": %d, ' ..
    '"p50_ms": %.3f, "p95_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f}\n',
    summary.requests, summary.duration / 1e6, bad,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000))
  out:close()
end
