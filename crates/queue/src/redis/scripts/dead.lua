-- dead.lua: the dead-letter queue, oldest first.
-- ARGV  limit
-- Returns -1 when no queue, else {id, payload, "priority:attempts", error, died ms, ...}.
if redis.call('EXISTS', META) == 0 then
  return -1
end
local out = {}
local rows = redis.call('ZRANGE', DEAD, 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
for i = 1, #rows, 2 do
  local id = rows[i]
  local fields = redis.call('HMGET', TASKS, id, id .. ':m', id .. ':e')
  table.insert(out, id)
  table.insert(out, fields[1] or 'null')
  table.insert(out, fields[2] or '0:0')
  table.insert(out, fields[3] or '')
  table.insert(out, rows[i + 1])
end
return out
