-- stats.lua: a queue's settings, counts and next token time (after housekeeping).
-- ARGV  (none)
-- Returns {} when no queue, else {meta as a flat list, {waiting, delayed, inflight, dead,
-- next token µs from now, now ms, worker processes, worker slots}, {priority, count,
-- priority, count, ...}}.
if redis.call('EXISTS', META) == 0 then
  return {}
end
local now = now_us()
local now_ms = math.floor(now / 1000)
local m = meta_table()
-- No touch(m): reading a queue is not using it (a monitor polling every queue each second
-- would keep idle ones forever), and housekeeping moves tasks between sets, never empties one.
housekeep(m, now_ms)
local t, burst = num(m, 't_us'), num(m, 'burst')
local tat = tonumber(redis.call('GET', TAT) or '0') or 0
local next_token = math.max(math.max(tat, now) + t - t * burst - now, 0)
local depths = {}
local min = '-inf'
for _ = 1, 64 do
  local r = redis.call('ZRANGEBYSCORE', WAITING, min, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if #r == 0 then
    break
  end
  local score = r[2]
  table.insert(depths, int(-tonumber(score)))
  table.insert(depths, redis.call('ZCOUNT', WAITING, score, score))
  min = '(' .. score
end
local workers = fleet(now_ms, false)
return { redis.call('HGETALL', META), { redis.call('ZCARD', WAITING), redis.call('ZCARD', DELAYED),
  redis.call('ZCARD', INFLIGHT), redis.call('ZCARD', DEAD), int(next_token), int(now_ms),
  workers[1], workers[2] }, depths }
