-- purge_dead.lua: deletes the dead-letter queue's tasks. Returns how many, or -1 when no queue.
if redis.call('EXISTS', META) == 0 then
  return -1
end
local ids = redis.call('ZRANGE', DEAD, 0, -1)
for _, id in ipairs(ids) do
  forget_task(id)
end
redis.call('DEL', DEAD)
touch(meta_table())
return #ids
