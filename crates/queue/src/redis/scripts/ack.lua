-- ack.lua: a task is done.
-- ARGV  id, attempt
-- Returns 1, 0 when the lease is not the caller's any more, -1 when the queue does not exist.
local m = queue_meta('idle_ms', 'completed')
if not m then
  return -1
end
local now = now_us()
local w = new_writes()
if ack_lease(m, w, ARGV[1], tonumber(ARGV[2]), math.floor(now / 1000)) == 0 then
  return 0
end
flush(w, now)
touch(m)
return 1
