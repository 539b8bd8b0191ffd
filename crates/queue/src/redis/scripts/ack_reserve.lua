-- ack_reserve.lua: for each lease given, ack.lua then reserve.lua on the same queue, all in
-- one step and at one time: what a worker's slots do between two tasks, for several slots in
-- one round trip. The same work as the two scripts one after the other for each lease in
-- turn (queue.lua's ack_lease and reserve_task), with the queue's settings read once and its
-- hash and token bucket written once (flush).
-- ARGV  id 1, attempt 1, id 2, attempt 2, ...
-- Returns {0} when the queue does not exist, else one reply a lease, in order: {5} when the
-- lease is not the caller's any more (nothing done for it), else the task is acknowledged
-- and this is reserve.lua's reply for it.
local fields = { unpack(RESERVE_FIELDS) }
fields[#fields + 1] = 'completed'
local m = queue_meta(unpack(fields))
if not m then
  return { 0 }
end
local now = now_us()
local now_ms = math.floor(now / 1000)
local w = new_writes()
local replies = {}
-- Once a reserve finds no task to start (paused, empty, rate-limited), the rest would find
-- the same at this time: they are given that reply without looking again.
local none
for i = 1, #ARGV - 1, 2 do
  if ack_lease(m, w, ARGV[i], tonumber(ARGV[i + 1]), now_ms) == 0 then
    replies[#replies + 1] = { 5 }
  elseif none then
    replies[#replies + 1] = none
  else
    local reply = reserve_task(m, w, now)
    if reply[1] ~= 4 then
      none = reply
    end
    replies[#replies + 1] = reply
  end
end
-- The acks' touch(m), once, after them all: a reserve that took a task leaves the hash
-- persisted (as touch would have, that task being held); once one found none, the acks after
-- it may have emptied the queue (housekeeping moves tasks between the sets, never out of
-- them all, so touching after it is the same).
if none then
  touch(m)
end
flush(w, now)
return replies
