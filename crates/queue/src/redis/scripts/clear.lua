-- clear.lua: drops the waiting and delayed tasks (not those in flight, not the dead).
-- Returns how many, or -1 when the queue does not exist.
if redis.call('EXISTS', META) == 0 then
  return -1
end
local n = 0
for _, set in ipairs({ WAITING, DELAYED }) do
  for _, id in ipairs(redis.call('ZRANGE', set, 0, -1)) do
    forget_task(id)
    n = n + 1
  end
  redis.call('DEL', set)
end
touch(meta_table())
return n
