-- common.lua: the algorithms every check script shares; the crate prepends base.lua and then
-- this file to gcra.lua, sliding_window.lua, fixed_window.lua and check_all.lua.
--
-- Each algorithm has:
--   eval(key, a, b, now, cost, pending) -> {allowed (1/0), limit, remaining, retry_after_ms,
--       reset_after_ms}, as if `pending` more cost had just been admitted at `now` (earlier
--       checks of a batch on the same key); writes nothing that changes a decision.
--   commit(key, a, now, cost): records an admission that eval allowed.
-- with (a, b) = (T in µs, BURST) for GCRA and (PERIOD in µs, COUNT) for the windows.

local function gcra_eval(key, t, burst, now, cost, pending)
  -- All in µs relative to now: how far the TAT runs ahead, and the tolerance BURST x T.
  local tau = t * burst
  local base = math.max(gcra_tat(key) - now, 0) + t * pending
  local after = base + t * cost
  if after <= tau then
    return { 1, burst, floor_div(tau - after, t), 0, ceil_ms(after) }
  end
  return { 0, burst, floor_div(math.max(tau - base, 0), t), ceil_ms(after - tau), ceil_ms(base) }
end

local function gcra_commit(key, t, now, cost)
  local tat = math.max(gcra_tat(key), now) + t * cost
  redis.call('SET', key, int(tat))
  expire_at(key, tat)
end

-- sliding-window: a sorted set of admissions scored by their time in µs. A member is
-- "<cumulative cost, 16 digits>:<cost>": the running total makes members unique and gives
-- the cost inside the window from its two ends, and the zero padding keeps admissions of
-- the same µs in order. Admissions are recorded in order of time (never before the newest,
-- even if the clock steps back), so the running total grows with rank.
local function sliding_entry(key, rank)
  local r = call_on(key, 'a sliding-window log', 'ZRANGE', key, rank, rank, 'WITHSCORES')
  if not r[1] then
    return nil
  end
  local sep = string.find(r[1], ':', 1, true)
  local cum = sep and tonumber(string.sub(r[1], 1, sep - 1))
  local cost = sep and tonumber(string.sub(r[1], sep + 1))
  if not (cum and cost) then
    bad_state(key, 'a sliding-window log')
  end
  return { t = tonumber(r[2]), cum = cum, cost = cost }
end

local function sliding_eval(key, period, count, now, cost, pending)
  -- The window is (now - PERIOD, now]: admissions at or before now - PERIOD have left it.
  call_on(key, 'a sliding-window log', 'ZREMRANGEBYSCORE', key, '-inf', int(now - period))
  local first = sliding_entry(key, 0)
  local last = sliding_entry(key, -1)
  local logged = 0
  if first then
    logged = last.cum - first.cum + first.cost
  end
  local used = logged + pending
  -- When the newest admission leaves the window; cost admitted now counts as made now.
  local function reset_ms(admits_now)
    local newest = last and last.t
    if admits_now then
      newest = math.max(newest or now, now)
    end
    if not newest then
      return 0
    end
    return ceil_ms(newest + period - now)
  end
  if used + cost <= count then
    return { 1, count, count - used - cost, 0, reset_ms(pending + cost > 0) }
  end
  -- The oldest admission whose leaving frees enough; pending cost stands at now and leaves
  -- last, so when the log alone cannot free enough the wait is a whole period.
  local need = used + cost - count
  local free_at = now + period
  if logged >= need then
    local target = first.cum - first.cost + need
    local lo, hi = 0, redis.call('ZCARD', key) - 1
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if sliding_entry(key, mid).cum >= target then
        hi = mid
      else
        lo = mid + 1
      end
    end
    free_at = sliding_entry(key, lo).t + period
  end
  return { 0, count, math.max(count - used, 0), ceil_ms(free_at - now), reset_ms(pending > 0) }
end

local function sliding_commit(key, period, now, cost)
  local last = sliding_entry(key, -1)
  local at, cum = now, cost
  if last then
    at = math.max(last.t, now)
    cum = last.cum + cost
  end
  redis.call('ZADD', key, int(at), string.format('%016.0f:%.0f', cum, cost))
  expire_at(key, at + period)
end

-- fixed-window: a hash {u = cost used, e = the window's end in µs}; windows are aligned to
-- multiples of PERIOD since the epoch. A window keeps counting until its end even if the
-- clock steps back or the period changes.
local function fixed_current(key, period, now)
  local v = call_on(key, 'a fixed-window count', 'HMGET', key, 'u', 'e')
  local used, stop = tonumber(v[1]), tonumber(v[2])
  if (v[1] and not used) or (v[2] and not stop) then
    bad_state(key, 'a fixed-window count')
  end
  if used and stop and used > 0 and now < stop then
    return used, stop
  end
  return 0, (floor_div(now, period) + 1) * period
end

local function fixed_eval(key, period, count, now, cost, pending)
  local used, stop = fixed_current(key, period, now)
  used = used + pending
  local until_end = ceil_ms(stop - now)
  if used + cost <= count then
    local reset = 0
    if used + cost > 0 then
      reset = until_end
    end
    return { 1, count, count - used - cost, 0, reset }
  end
  return { 0, count, math.max(count - used, 0), until_end, until_end }
end

local function fixed_commit(key, period, now, cost)
  local used, stop = fixed_current(key, period, now)
  redis.call('HSET', key, 'u', int(used + cost), 'e', int(stop))
  expire_at(key, stop)
end

local ALGORITHMS = {
  g = { eval = gcra_eval, commit = gcra_commit },
  s = { eval = sliding_eval, commit = sliding_commit },
  f = { eval = fixed_eval, commit = fixed_commit },
}

-- One check: ARGV = {a, b, cost}; returns the decision and the time it was made at.
local function check_one(alg, key, argv)
  local a, b, cost = tonumber(argv[1]), tonumber(argv[2]), tonumber(argv[3])
  local now = now_us()
  local d = alg.eval(key, a, b, now, cost, 0)
  if d[1] == 1 and cost > 0 then
    alg.commit(key, a, now, cost)
  end
  d[6] = now
  return d
end
