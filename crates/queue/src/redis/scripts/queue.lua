-- queue.lua: what every queue script shares; the crate prepends tollgate-redis's base.lua
-- (now_us, int, gcra_tat, ceil_ms) and this file to each operation's script.
--
-- KEYS (every script, in this order; one hash tag, so one Cluster slot):
--   1 meta      hash: settings and counters
--   2 waiting   zset: score -priority, member the task id (16 digits: FIFO within a priority)
--   3 delayed   zset: score the time (ms) the task is due
--   4 inflight  zset: score the time (ms) the lease expires
--   5 dead      zset: score the time (ms) the task died
--   6 tasks     hash: ID -> payload, ID:m -> "priority:attempts", ID:e -> last error
--   7 tat       string: the token bucket's arrival time, µs (base.lua's gcra_tat)
--   8 workers   hash: worker process -> "slots:report expiry ms" (workers.lua)
local META, WAITING, DELAYED, INFLIGHT, DEAD, TASKS, TAT, WORKERS =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]

-- base.lua's int() for the whole numbers these scripts write (times, ids, counters,
-- priorities): '%d' when the number is whole and exact (|n| < 2^53), which spares the
-- multi-precision work of '%.0f' (a few percent of a reserve); anything else goes to
-- base.lua's int(). The text is the same but for -0, written "0", the same score.
local exact_int = int
local function int(n)
  if n % 1 == 0 and n > -9007199254740992 and n < 9007199254740992 then
    return string.format('%d', n)
  end
  return exact_int(n)
end

-- At most this many delayed or expired tasks are moved per call: a script must stay short.
local HOUSEKEEP_BATCH = 1000

local function meta_table()
  local flat = redis.call('HGETALL', META)
  local m = {}
  for i = 1, #flat, 2 do
    m[flat[i]] = flat[i + 1]
  end
  return m
end

-- Only the named fields of the queue's hash (HMGET: much cheaper than meta_table() when a
-- script needs a few), as a table like meta_table()'s, or nil when there is no queue. Every
-- queue's hash has every setting (create.lua writes them all), so name a setting first: its
-- absence means the hash does not exist.
local function queue_meta(...)
  local names = { ... }
  local values = redis.call('HMGET', META, unpack(names))
  if not values[1] then
    return nil
  end
  local m = {}
  for i, name in ipairs(names) do
    if values[i] then
      m[name] = values[i]
    end
  end
  return m
end

local function num(m, field)
  return tonumber(m[field] or '0') or 0
end

-- A task's "priority:attempts" as two numbers (nil for none).
local function parse_task_info(v)
  if not v then
    return nil
  end
  local p, a = string.match(v, '^(%d+):(%d+)$')
  return tonumber(p), tonumber(a)
end

local function task_info(id)
  return parse_task_info(redis.call('HGET', TASKS, id .. ':m'))
end

local function set_task_info(id, priority, attempts)
  redis.call('HSET', TASKS, id .. ':m', int(priority) .. ':' .. int(attempts))
end

local function forget_task(id)
  redis.call('HDEL', TASKS, id, id .. ':m', id .. ':e')
end

-- Due delayed tasks become ready; expired leases go back to the queue, or to the dead-letter
-- queue when they were the last attempt.
local function housekeep(m, now_ms)
  local due = redis.call('ZRANGEBYSCORE', DELAYED, '-inf', int(now_ms), 'LIMIT', 0, HOUSEKEEP_BATCH)
  for _, id in ipairs(due) do
    redis.call('ZREM', DELAYED, id)
    local p = task_info(id)
    if p then
      redis.call('ZADD', WAITING, int(-p), id)
    end
  end
  local lost = redis.call('ZRANGEBYSCORE', INFLIGHT, '-inf', int(now_ms), 'LIMIT', 0, HOUSEKEEP_BATCH)
  for _, id in ipairs(lost) do
    redis.call('ZREM', INFLIGHT, id)
    redis.call('HINCRBY', META, 'lost', 1)
    local p, a = task_info(id)
    if p then
      redis.call('HSET', TASKS, id .. ':e', 'lease expired after ' .. m['vis_ms'] ..
        ' ms: the worker died or did not heartbeat')
      if a >= num(m, 'max_attempts') then
        redis.call('HINCRBY', META, 'failed', 1)
        redis.call('ZADD', DEAD, int(now_ms), id)
      else
        redis.call('ZADD', WAITING, int(-p), id)
      end
    end
  end
end

-- housekeep() has work only once the earliest delayed task is due or the earliest lease has
-- expired. The queue's hash keeps hk_ms, a time at or before both (missing: 0), which every
-- script that adds to the delayed or in-flight set lowers (note_due), so a reserve skips the
-- housekeeping until then: the same as housekeeping every time, for less.
local NEVER = 9007199254740991

-- A task went into the delayed or in-flight set with score `due` (ms): lowers hk_ms to it.
local function note_due(due)
  if (tonumber(redis.call('HGET', META, 'hk_ms') or '0') or 0) > due then
    redis.call('HSET', META, 'hk_ms', int(due))
  end
end

-- An empty queue (nothing waiting, delayed, in flight or dead) expires after its idle time;
-- any task keeps it.
-- (`m` needs only idle_ms; the sets are looked at only until one holds a task.)
local function holds_tasks()
  return redis.call('ZCARD', WAITING) > 0 or redis.call('ZCARD', INFLIGHT) > 0 or
    redis.call('ZCARD', DELAYED) > 0 or redis.call('ZCARD', DEAD) > 0
end

-- The worker processes whose reports have not expired at now_ms: {processes, slots}. With
-- `prune`, the expired reports are deleted.
local function fleet(now_ms, prune)
  local flat = redis.call('HGETALL', WORKERS)
  local processes, slots = 0, 0
  for i = 1, #flat, 2 do
    local n, expires = string.match(flat[i + 1], '^(%d+):(%d+)$')
    if n and tonumber(expires) > now_ms then
      processes = processes + 1
      slots = slots + tonumber(n)
    elseif prune then
      redis.call('HDEL', WORKERS, flat[i])
    end
  end
  return { processes, slots }
end

local function touch(m)
  local idle = num(m, 'idle_ms')
  if idle > 0 and not holds_tasks() then
    redis.call('PEXPIRE', META, int(idle))
  else
    redis.call('PERSIST', META)
  end
end

-- The lease (id, attempt) is the caller's: the task is in flight at that attempt.
local function held(id, attempt)
  if not redis.call('ZSCORE', INFLIGHT, id) then
    return nil
  end
  local p, a = task_info(id)
  if a ~= attempt then
    return nil
  end
  return p
end

-- The hot scripts (ack, reserve) gather their writes in `w` (new_writes()) and make them at
-- the end (flush): one HSET of the queue's hash, one SET of the token bucket. A counter is the
-- value read at the start (queue_meta) plus one per change, kept in `m` too, so a script that
-- acknowledges and reserves several tasks counts each; the script's atomicity makes it exact.
local function new_writes()
  return { meta = {}, tat = nil }
end

-- Sets a field of the queue's hash, in `m` and (at flush) in Redis.
local function set_meta(m, w, field, value)
  m[field] = value
  w.meta[field] = value
end

-- `now` (µs): the time the script read, from which the bucket's expiry is counted.
local function flush(w, now)
  local fields = {}
  for field, value in pairs(w.meta) do
    fields[#fields + 1] = field
    fields[#fields + 1] = value
  end
  if #fields > 0 then
    redis.call('HSET', META, unpack(fields))
  end
  -- The bucket's state expires once it is full again: PX is relative to Redis's clock, which
  -- `now` was read from at the start of this script, so one ms more than the wait rounded up
  -- keeps it at least that long (kept longer, it only says what a missing key says: full).
  if w.tat then
    redis.call('SET', TAT, int(w.tat), 'PX', int(ceil_ms(w.tat - now) + 1))
  end
end

-- ack.lua's work, once the queue is known to exist (`m` from queue_meta with idle_ms and
-- completed): the lease (id, attempt) is done. Returns 1, or 0 when the lease is not the
-- caller's any more (the task not in flight at that attempt: nothing is done). Its writes
-- to the hash go to `w` (flush); touch(m) is the caller's.
local function ack_lease(m, w, id, attempt, now_ms)
  local _, a = task_info(id)
  -- held(), with the ZREM telling whether the task was in flight.
  if a ~= attempt or redis.call('ZREM', INFLIGHT, id) == 0 then
    return 0
  end
  forget_task(id)
  set_meta(m, w, 'completed', int(num(m, 'completed') + 1))
  set_meta(m, w, 'last_done_ms', int(now_ms))
  return 1
end

-- The fields of the queue's hash reserve_task needs (one HMGET: queue_meta), a setting first.
local RESERVE_FIELDS = { 'active', 't_us', 'burst', 'vis_ms', 'max_attempts', 'idle_ms',
  'first_start_ms', 'started', 'hk_ms' }

-- housekeep() when something may be due (hk_ms), then hk_ms anew: the earliest score left in
-- the delayed and in-flight sets (NEVER for none). `m` from queue_meta; writes go to `w`.
local function housekeep_if_due(m, w, now_ms)
  if num(m, 'hk_ms') > now_ms then
    return
  end
  housekeep(m, now_ms)
  local hk = NEVER
  for _, set in ipairs({ DELAYED, INFLIGHT }) do
    local first = redis.call('ZRANGE', set, 0, 0, 'WITHSCORES')
    if first[2] then
      hk = math.min(hk, tonumber(first[2]))
    end
  end
  set_meta(m, w, 'hk_ms', int(hk))
end

-- One token of the queue's GCRA bucket (T = t µs, tolerance burst x T) at `now` (µs): takes
-- it and returns nil, or returns the ms until one is free. tollgate-redis's gcra_eval and
-- gcra_commit for a cost of 1, with the state read once per script (kept in `w`) and
-- written once, by flush.
local function take_token(w, t, burst, now)
  local tat = w.tat or gcra_tat(TAT)
  local after = math.max(tat - now, 0) + t
  if after > t * burst then
    return ceil_ms(after - t * burst)
  end
  w.tat = math.max(tat, now) + t
  return nil
end

-- reserve.lua's work, once the queue is known to exist: a token, the highest-priority ready
-- task and a lease on it, at `now` (µs). Returns reserve.lua's reply; its writes go to `w`
-- (flush).
local function reserve_task(m, w, now)
  local now_ms = math.floor(now / 1000)
  housekeep_if_due(m, w, now_ms)
  if m['active'] ~= '1' then
    return { 1 }
  end
  -- Popped at once (one command, not a look and a removal): a task that finds no token goes
  -- back with its score, so its place in the order is kept.
  local first = redis.call('ZPOPMIN', WAITING)
  if #first == 0 then
    local d = redis.call('ZRANGE', DELAYED, 0, 0, 'WITHSCORES')
    -- No touch(m): a worker waiting on an empty queue is not using it, so the queue still
    -- expires (as on the embedded store); the last write that emptied it set its expiry.
    if #d == 0 then
      return { 2, -1 }
    end
    return { 2, math.max(tonumber(d[2]) - now_ms, 0) }
  end
  local id = first[1]
  local wait_ms = take_token(w, num(m, 't_us'), num(m, 'burst'), now)
  if wait_ms then
    redis.call('ZADD', WAITING, first[2], id)
    return { 3, wait_ms }
  end
  -- The payload and the info in one read.
  local task = redis.call('HMGET', TASKS, id, id .. ':m')
  local priority, attempts = parse_task_info(task[2])
  attempts = attempts + 1
  set_task_info(id, priority, attempts)
  local expires = now_ms + num(m, 'vis_ms')
  redis.call('ZADD', INFLIGHT, int(expires), id)
  if num(m, 'hk_ms') > expires then
    set_meta(m, w, 'hk_ms', int(expires))
  end
  set_meta(m, w, 'started', int(num(m, 'started') + 1))
  if m['first_start_ms'] == '0' then
    set_meta(m, w, 'first_start_ms', int(now_ms))
  end
  -- No PERSIST: the hash has an expiry only while the queue holds no task (touch), and every
  -- script that adds one persists it, so a queue with a task to take has none.
  return { 4, id, task[1], priority, attempts, int(now), int(expires) }
end
