-- workers.lua: a worker process's report of the slots it runs on the queue, kept until its
-- time to live passes (queue.lua's fleet). Not a touch: it does not keep an idle queue alive.
-- ARGV  process, slots (0: it stopped), time to live ms
-- Returns {0} when no queue, else {1, processes, slots}: the fleet, this report included.
if redis.call('EXISTS', META) == 0 then
  return { 0 }
end
local now_ms = math.floor(now_us() / 1000)
local slots, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
if slots > 0 and ttl > 0 then
  redis.call('HSET', WORKERS, ARGV[1], int(slots) .. ':' .. int(now_ms + ttl))
  -- The hash outlives no report: it goes when the longest-lived one expires.
  if redis.call('PTTL', WORKERS) < ttl then
    redis.call('PEXPIRE', WORKERS, int(ttl))
  end
else
  redis.call('HDEL', WORKERS, ARGV[1])
end
local f = fleet(now_ms, true)
return { 1, f[1], f[2] }
