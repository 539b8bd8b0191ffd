-- push.lua: adds a task.
-- ARGV  payload, priority, delay_ms
-- Returns {1, id}, or {0} when the queue does not exist.
if redis.call('EXISTS', META) == 0 then
  return { 0 }
end
local now_ms = math.floor(now_us() / 1000)
local seq = redis.call('HINCRBY', META, 'seq', 1)
local id = string.format('%016d', seq)
local priority = tonumber(ARGV[2])
local delay = tonumber(ARGV[3])
redis.call('HSET', TASKS, id, ARGV[1])
set_task_info(id, priority, 0)
if delay > 0 then
  redis.call('ZADD', DELAYED, int(now_ms + delay), id)
  note_due(now_ms + delay)
else
  redis.call('ZADD', WAITING, int(-priority), id)
end
redis.call('HINCRBY', META, 'pushed', 1)
redis.call('PERSIST', META)
return { 1, id }
