-- ack.lua: a task is done.
-- ARGV  id, attempt
-- Returns 1, 0 when the lease is not the caller's any more, -1 when the queue does not exist.
local m = queue_meta('idle_ms')
if not m then
  return -1
end
return ack_lease(m, ARGV[1], tonumber(ARGV[2]), math.floor(now_us() / 1000))
