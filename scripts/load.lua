-- wrk script for scripts/load.sh: POSTs a captured AdmissionReview, alternating /validate
-- and /mutate; with WRK_DELAY_MS set, each connection waits that long between requests
-- (an open-loop-ish rate limit: rate ~= connections * 1000 / (delay + latency)).
local body_file = os.getenv("WRK_BODY")
local f = assert(io.open(body_file, "rb"))
local body = f:read("*a")
f:close()
local delay_ms = tonumber(os.getenv("WRK_DELAY_MS") or "0")
local paths = { "/validate?timeout=10s", "/mutate?timeout=10s" }
local n = 0

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = body

request = function()
  n = n + 1
  return wrk.format(nil, paths[(n % 2) + 1])
end

if delay_ms > 0 then
  delay = function() return delay_ms end
end

done = function(summary, latency, requests)
  local secs = summary.duration / 1e6
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format(
    "RESULT requests=%d rps=%.0f p50_us=%d p99_us=%d max_us=%d errors=%d\n",
    summary.requests, summary.requests / secs, latency:percentile(50),
    latency:percentile(99), latency.max, errors))
end
