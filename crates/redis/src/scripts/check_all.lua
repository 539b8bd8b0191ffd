-- check_all.lua: decides a batch all-or-nothing (common.lua is prepended).
-- KEYS[i]          check i's state key (a key checked twice under one family appears twice)
-- ARGV[4i-3..4i]   check i: family (g, s or f), A, B, cost
--                  with A, B = T in µs and BURST for g, PERIOD in µs and COUNT for s and f
-- Returns {allowed (1/0), retry_after_ms, now in µs, then for each check: allowed (1/0),
-- limit, remaining, retry_after_ms, reset_after_ms}.
--
-- Every check is decided at one `now`, counting the batch's earlier checks on the same state
-- key as admitted. Only if all are allowed is any cost recorded. In a denied batch each
-- decision's remaining and reset_after_ms describe the key as it is.
local now = now_us()
local checks, decisions = {}, {}
local pending = {}
local all = 1
for i = 1, #KEYS do
  local alg = ALGORITHMS[ARGV[4 * i - 3]]
  if not alg then
    error({ err = 'ERR tollgate: unknown family ' .. tostring(ARGV[4 * i - 3]) })
  end
  local c = { alg = alg, key = KEYS[i], a = tonumber(ARGV[4 * i - 2]),
              b = tonumber(ARGV[4 * i - 1]), cost = tonumber(ARGV[4 * i]) }
  local before = pending[c.key] or 0
  pending[c.key] = before + c.cost
  checks[i] = c
  decisions[i] = alg.eval(c.key, c.a, c.b, now, c.cost, before)
  if decisions[i][1] == 0 then
    all = 0
  end
end

if all == 1 then
  for i = 1, #checks do
    local c = checks[i]
    if c.cost > 0 then
      c.alg.commit(c.key, c.a, now, c.cost)
    end
  end
else
  for i = 1, #checks do
    local c = checks[i]
    local as_is = c.alg.eval(c.key, c.a, c.b, now, 0, 0)
    decisions[i][3] = as_is[3]
    decisions[i][5] = as_is[5]
  end
end

local retry = 0
local out = { all, 0, now }
for i = 1, #decisions do
  local d = decisions[i]
  retry = math.max(retry, d[4])
  for j = 1, 5 do
    out[#out + 1] = d[j]
  end
end
out[2] = retry
return out
