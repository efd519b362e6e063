-- wrk script for the soak (bench/soak/soak.mjs): the business endpoints in
-- turn, and the answers counted by status (printed as one JSON line).
local paths = {
  "/api/health",
  "/api/work?n=2000&seed=7",
  "/api/primes?limit=20000",
  "/api/search?q=ab",
  "/api/report?customer=42&days=7",
}
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  i = math.random(#paths)
  counts = {}
end

function request()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    local c = t:get("counts")
    for k, v in pairs(c) do total[k] = (total[k] or 0) + v end
  end
  local parts = {}
  for k, v in pairs(total) do table.insert(parts, string.format('"%d":%d', k, v)) end
  io.write(string.format('WRK_RESULT {"requests":%d,"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d},"by_status":{%s},"p50_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f}\n',
    summary.requests, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.timeout, summary.errors.status, table.concat(parts, ","),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
