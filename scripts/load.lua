-- wrk script for scripts/load.sh and scripts/instructions.sh: POSTs a captured
-- AdmissionReview, alternating /validate and /mutate.
local body_file = os.getenv("WRK_BODY")
local f = assert(io.open(body_file, "rb"))
local body = f:read("*a")
f:close()
local paths = { "/validate?timeout=10s", "/mutate?timeout=10s" }
local n = 0

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = body

request = function()
  n = n + 1
  return wrk.format(nil, paths[(n % 2) + 1])
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
