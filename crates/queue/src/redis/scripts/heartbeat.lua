-- heartbeat.lua: extends a lease by the visibility timeout.
-- ARGV  id, attempt
-- Returns the new expiry (ms), 0 when the lease is not the caller's, -1 when no queue.
if redis.call('EXISTS', META) == 0 then
  return -1
end
local id, attempt = ARGV[1], tonumber(ARGV[2])
if not held(id, attempt) then
  return 0
end
local expires = math.floor(now_us() / 1000) + tonumber(redis.call('HGET', META, 'vis_ms'))
redis.call('ZADD', INFLIGHT, 'XX', int(expires), id)
return expires
