-- delivery.lua — the wrk load of bench_delivery.sh: the request the trigger
-- dispatcher sends a subscriber for one of the benchmark's events, POSTed
-- once per request with its own ce-id, and one machine-readable result line
-- at the end.
--
-- The headers are those the dispatcher sends (binary mode: the event's
-- attributes as ce- headers, the ingress's knativebrokerttl and
-- knativearrivaltime among them, "Prefer: reply", curl's "Accept: */*"),
-- and the body is the same 100-byte JSON. Only the partitionkey is fixed:
-- the subscriber does not look at it. As in ingress.lua the request is
-- formatted once per thread and split around the ce-id, and there is no
-- response() callback, so that wrk costs as little as it can.

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
    ["Accept"] = "*/*",
    ["ce-specversion"] = "1.0",
    ["ce-id"] = MARK,
    ["ce-source"] = "/bench/delivery",
    ["ce-type"] = "dev.outpost.bench.order",
    ["ce-partitionkey"] = "key-7",
    ["ce-knativebrokerttl"] = "255",
    ["ce-knativearrivaltime"] = "2026-11-21T19:45:52.044985038Z",
    ["Content-Type"] = "application/json",
    ["Prefer"] = "reply",
  }, body)
  local at = raw:find(MARK, 1, true)
  head = raw:sub(1, at - 1) .. "ev-" .. tostring(tid) .. "-"
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
    "delivery-result requests=%d seconds=%.3f rps=%.1f p50_ms=%.3f p99_ms=%.3f " ..
    "status_errors=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d\n",
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.status, e.connect, e.read, e.write, e.timeout))
end
