-- reserve.lua: in one step, a token, the highest-priority ready task and a lease on it.
-- ARGV  (none)
-- Returns {0} no queue, {1} paused, {2, ms until the next delayed task or -1} nothing ready,
-- {3, ms until a token} rate-limited, or
-- {4, id, payload, priority, attempt, started µs, lease expiry ms} a task.
-- The hottest script (every attempt and every idle poll): it reads only the settings it
-- needs, and the task's payload and info in one HMGET.
local m = queue_meta('active', 't_us', 'burst', 'vis_ms', 'max_attempts', 'idle_ms',
  'first_start_ms')
if not m then
  return { 0 }
end
local now = now_us()
local now_ms = math.floor(now / 1000)
housekeep(m, now_ms)
if m['active'] ~= '1' then
  return { 1 }
end
local first = redis.call('ZRANGE', WAITING, 0, 0)
if #first == 0 then
  local d = redis.call('ZRANGE', DELAYED, 0, 0, 'WITHSCORES')
  touch(m)
  if #d == 0 then
    return { 2, -1 }
  end
  return { 2, math.max(tonumber(d[2]) - now_ms, 0) }
end
local t, burst = num(m, 't_us'), num(m, 'burst')
local decision = gcra_eval(TAT, t, burst, now, 1, 0)
if decision[1] == 0 then
  return { 3, decision[4] }
end
gcra_commit(TAT, t, now, 1)
local id = first[1]
redis.call('ZREM', WAITING, id)
local task = redis.call('HMGET', TASKS, id, id .. ':m')
local priority, attempts = parse_task_info(task[2])
attempts = attempts + 1
set_task_info(id, priority, attempts)
local expires = now_ms + num(m, 'vis_ms')
redis.call('ZADD', INFLIGHT, int(expires), id)
redis.call('HINCRBY', META, 'started', 1)
if m['first_start_ms'] == '0' then
  redis.call('HSET', META, 'first_start_ms', int(now_ms))
end
redis.call('PERSIST', META)
return { 4, id, task[1], priority, attempts, int(now), int(expires) }
