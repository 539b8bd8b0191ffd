-- ack.lua: a task is done.
-- ARGV  id, attempt
-- Returns 1, 0 when the lease is not the caller's any more, -1 when the queue does not exist.
local m = queue_meta('idle_ms', 'completed')
if not m then
  return -1
end
local w = {}
if ack_lease(m, w, ARGV[1], tonumber(ARGV[2]), math.floor(now_us() / 1000)) == 0 then
  return 0
end
write_meta(w)
touch(m)
return 1
