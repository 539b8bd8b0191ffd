-- ack_reserve.lua: ack.lua, then reserve.lua on the same queue, in one step and at one time:
-- what a worker does between two tasks, in one round trip instead of two. The same work as
-- the two scripts one after the other (queue.lua's ack_lease and reserve_task).
-- ARGV  id, attempt
-- Returns {0} when the queue does not exist, {5} when the lease is not the caller's any more
-- (nothing done), else the task is acknowledged and this is reserve.lua's reply.
local m = queue_meta(unpack(RESERVE_FIELDS))
if not m then
  return { 0 }
end
local now = now_us()
if ack_lease(m, ARGV[1], tonumber(ARGV[2]), math.floor(now / 1000)) == 0 then
  return { 5 }
end
return reserve_task(m, now)
