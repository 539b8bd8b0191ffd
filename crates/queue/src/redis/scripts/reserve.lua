-- reserve.lua: in one step, a token, the highest-priority ready task and a lease on it.
-- ARGV  (none)
-- Returns {0} no queue, {1} paused, {2, ms until the next delayed task or -1} nothing ready,
-- {3, ms until a token} rate-limited, or
-- {4, id, payload, priority, attempt, started µs, lease expiry ms} a task.
-- The hottest script (every attempt and every idle poll), so it reads only the settings it
-- needs (queue.lua's reserve_task does the work; ack_reserve.lua shares it).
local m = queue_meta(unpack(RESERVE_FIELDS))
if not m then
  return { 0 }
end
local now = now_us()
local w = new_writes()
local reply = reserve_task(m, w, now)
flush(w, now)
return reply
