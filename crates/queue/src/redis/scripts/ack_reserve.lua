-- ack_reserve.lua: ack.lua, then reserve.lua on the same queue, in one step and at one time:
-- what a worker does between two tasks, in one round trip instead of two. The same work as
-- the two scripts one after the other (queue.lua's ack_lease and reserve_task), with the
-- writes to the queue's hash made by one HSET.
-- ARGV  id, attempt
-- Returns {0} when the queue does not exist, {5} when the lease is not the caller's any more
-- (nothing done), else the task is acknowledged and this is reserve.lua's reply.
local fields = { unpack(RESERVE_FIELDS) }
fields[#fields + 1] = 'completed'
local m = queue_meta(unpack(fields))
if not m then
  return { 0 }
end
local now = now_us()
local w = {}
if ack_lease(m, w, ARGV[1], tonumber(ARGV[2]), math.floor(now / 1000)) == 0 then
  return { 5 }
end
local reply = reserve_task(m, w, now)
-- The ack's touch(m): a reserve that took a task persisted the hash (as touch would have,
-- that task being held) and one that found none touched it; the others leave it to here
-- (housekeeping moves tasks between the sets, never out of them all, so touching after it
-- is the same).
if reply[1] == 1 or reply[1] == 3 then
  touch(m)
end
write_meta(w)
return reply
