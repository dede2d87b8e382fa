-- ingress.lua — the wrk load of bench_ingress.sh: one binary-mode CloudEvent
-- (HTTP binding, ce- headers, a 100-byte JSON body) POSTed per request, each
-- with its own ce-id, and one machine-readable result line at the end.
--
-- The request is formatted once per thread and split around the ce-id, so a
-- request costs wrk two string concatenations, not a wrk.format call: the
-- client shares the machine with the server under test, and the cheaper it is
-- the more of the machine the server gets. No response() callback either:
-- defining one makes wrk hand every response's headers to Lua. wrk already
-- counts answers with status >= 400 (summary.errors.status); the script
-- checks the rest against the broker's /metrics.

local body = '{"orderId":"ord-000123","customer":"c-42","items":3,' ..
             '"total":129.95,"currency":"EUR","express":false}'

local MARK = "@@CE_ID@@"
local threads = {}
local head, tail
local seq = 0

function setup(thread)
  -- Thread numbers make ce-id unique across wrk's threads.
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  local raw = wrk.format("POST", nil, {
    ["ce-specversion"] = "1.0",
    ["ce-id"] = MARK,
    ["ce-source"] = "/bench/ingress",
    ["ce-type"] = "dev.outpost.bench.order",
    ["Content-Type"] = "application/json",
  }, body)
  local at = raw:find(MARK, 1, true)
  head = raw:sub(1, at - 1) .. tostring(tid) .. "-"
  tail = raw:sub(at + #MARK)
end

function request()
  seq = seq + 1
  return head .. seq .. tail
end

function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "ingress-result requests=%d seconds=%.3f rps=%.1f p50_ms=%.3f p99_ms=%.3f " ..
    "status_errors=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d " ..
    "body_bytes=%d\n",
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.status, e.connect, e.read, e.write, e.timeout, #body))
end
