-- wrk script: POST a small chat completion; optional request cap; a JSON summary on stdout.
-- Environment (read once per thread):
--   BENCH_AUTH     the bearer key (any value works against the mock)
--   BENCH_DIRECT   "1" adds `x-bench-direct: 1` so the mock counts the request as direct
--   BENCH_MAX      stop a thread after this many responses (0 = only the -d duration bounds the run)
--   BENCH_THREADS  the -t value, to split BENCH_MAX between threads
--   BENCH_MODEL    the model asked for (default bench-model)

local max_per_thread = 0
local seen = 0

wrk.method = "POST"
wrk.body = '{"model":"' .. (os.getenv("BENCH_MODEL") or "bench-model") .. '","messages":[{"role":"user","content":"Say hello."}],"max_tokens":16}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_AUTH") or "none")
if os.getenv("BENCH_DIRECT") == "1" then
  wrk.headers["x-bench-direct"] = "1"
end

function init(args)
  local total = tonumber(os.getenv("BENCH_MAX") or "0") or 0
  local threads = tonumber(os.getenv("BENCH_THREADS") or "1") or 1
  if total > 0 then
    max_per_thread = math.ceil(total / threads)
  end
end

function response(status, headers, body)
  if max_per_thread > 0 then
    seen = seen + 1
    if seen >= max_per_thread then
      wrk.thread:stop()
    end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"lat_mean_us":%.1f,"lat_max_us":%d,' ..
    '"lat_p50_us":%d,"lat_p90_us":%d,"lat_p99_us":%d,"lat_p999_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9)))
end
