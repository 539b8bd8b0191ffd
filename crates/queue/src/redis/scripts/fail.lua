-- fail.lua: an attempt failed: retry after a backoff, or dead-letter after the last attempt.
-- ARGV  id, attempt, error, retry_after_ms ('' for the queue's backoff), jitter in [0, 1)
-- Returns {1, delay ms} retried, {2} dead, {0} lease not the caller's, {-1} no queue.
-- The backoff is tollgate_queue::backoff_ms: base x 2^(attempt-1), at most max, half of it
-- fixed and half scaled by the jitter.
if redis.call('EXISTS', META) == 0 then
  return { -1 }
end
local id, attempt = ARGV[1], tonumber(ARGV[2])
if not held(id, attempt) then
  return { 0 }
end
local m = meta_table()
local now_ms = math.floor(now_us() / 1000)
redis.call('ZREM', INFLIGHT, id)
redis.call('HSET', TASKS, id .. ':e', ARGV[3])
redis.call('HINCRBY', META, 'failed', 1)
if attempt >= num(m, 'max_attempts') then
  redis.call('ZADD', DEAD, int(now_ms), id)
  return { 2 }
end
local delay
if ARGV[4] ~= '' then
  delay = tonumber(ARGV[4])
else
  local full = math.min(num(m, 'backoff_base_ms') * 2 ^ math.min(attempt - 1, 62),
    num(m, 'backoff_max_ms'))
  local fixed = math.floor(full / 2)
  delay = fixed + math.min(math.floor((full - fixed) * tonumber(ARGV[5])), full - fixed)
end
redis.call('ZADD', DELAYED, int(now_ms + delay), id)
note_due(now_ms + delay)
return { 1, int(delay) }
