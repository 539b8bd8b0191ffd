-- ack.lua: a task is done.
-- ARGV  id, attempt
-- Returns 1, 0 when the lease is not the caller's any more, -1 when the queue does not exist.
local m = queue_meta('idle_ms')
if not m then
  return -1
end
local id, attempt = ARGV[1], tonumber(ARGV[2])
if not held(id, attempt) then
  return 0
end
local now_ms = math.floor(now_us() / 1000)
redis.call('ZREM', INFLIGHT, id)
forget_task(id)
redis.call('HINCRBY', META, 'completed', 1)
redis.call('HSET', META, 'last_done_ms', int(now_ms))
touch(m)
return 1
