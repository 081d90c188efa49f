-- wrk script: every request is picked at random from a prepared list, and done() prints the
-- figures as one JSON line that bench/wrk.py reads.
--   BENCH_REQUESTS       a Lua file returning {method = "GET", items = {{path = ..., body = ...}, ...}}
--   BENCH_AUTHORIZATION  the Authorization header sent with every request
--   BENCH_DELAY_MS       optional: each connection waits about this long between an answer and
--                        its next request, which paces the load (the soak); unset, back to back
local spec = dofile(os.getenv("BENCH_REQUESTS"))
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS"))
local prepared = {}
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end

function init(args)
  -- thread_number is a global set by setup(); each thread draws its own random sequence.
  math.randomseed(os.time() * 100 + (thread_number or 0))
  local headers = {["Authorization"] = os.getenv("BENCH_AUTHORIZATION")}
  if spec.method == "POST" then
    headers["Content-Type"] = "application/json"
  end
  -- Formatted once here: request() only picks, so the generator spends its time sending.
  for i, item in ipairs(spec.items) do
    prepared[i] = wrk.format(spec.method, item.path, headers, item.body)
  end
end

function request()
  return prepared[math.random(#prepared)]
end

-- Defined only when pacing: wrk schedules a timer per request as soon as delay() exists.
if delay_ms then
  function delay()
    -- Uniform in [0.5, 1.5] × the mean, so the connections drift apart instead of firing in step.
    return math.floor(delay_ms * (0.5 + math.random()))
  end
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, "p50_us": %d, "p99_us": %d, '
      .. '"status": %d, "connect": %d, "read": %d, "write": %d, "timeout": %d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(99),
    errors.status, errors.connect, errors.read, errors.write, errors.timeout))
end
