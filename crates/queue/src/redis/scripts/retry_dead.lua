-- retry_dead.lua: dead tasks back to the queue with fresh attempts.
-- ARGV  ids (none: every dead task)
-- Returns how many, or -1 when no queue.
if redis.call('EXISTS', META) == 0 then
  return -1
end
local ids = ARGV
if #ids == 0 then
  ids = redis.call('ZRANGE', DEAD, 0, -1)
end
local n = 0
for _, id in ipairs(ids) do
  if redis.call('ZREM', DEAD, id) == 1 then
    local p = task_info(id) or 0
    set_task_info(id, p, 0)
    redis.call('ZADD', WAITING, int(-p), id)
    n = n + 1
  end
end
touch(meta_table())
return n
