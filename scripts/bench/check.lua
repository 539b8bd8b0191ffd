-- check.lua: the wrk script of scripts/bench/http.sh.
--
-- Sends POST /v1/check with the body {"key":"user:N","policy":"POLICY"}, N drawn at random
-- from 0..KEYS-1. Arguments (after wrk's `--`): KEYS (default 10000), POLICY (default
-- enterprise). Each wrk thread builds KEYS requests up front (at least 16384, at most 65536)
-- and cycles through them, so the Lua cost per request is a table lookup, the same for every
-- server under test.
--
-- At the end it prints one line for the script to parse:
--   RESULT requests=… duration_us=… rps=… p50_us=… p90_us=… p99_us=… max_us=… mean_us=…
--          non2xx=… connect_err=… read_err=… write_err=… timeout_err=…

local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

local requests = {}
local next_index = 1

function init(args)
  local keys = tonumber(args[1]) or 10000
  local policy = args[2] or "enterprise"
  math.randomseed(1234 + 7919 * (id or 0))
  local headers = { ["Content-Type"] = "application/json" }
  local count = math.min(math.max(keys, 16384), 65536)
  for i = 1, count do
    local key = math.random(0, keys - 1)
    local body = string.format('{"key":"user:%d","policy":"%s"}', key, policy)
    requests[i] = wrk.format("POST", "/v1/check", headers, body)
  end
end

function request()
  local r = requests[next_index]
  next_index = next_index + 1
  if next_index > #requests then
    next_index = 1
  end
  return r
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d rps=%.0f p50_us=%d p90_us=%d p99_us=%d max_us=%d "
      .. "mean_us=%.0f non2xx=%d connect_err=%d read_err=%d write_err=%d timeout_err=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean, e.status, e.connect, e.read, e.write, e.timeout))
end
