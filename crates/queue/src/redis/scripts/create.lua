-- create.lua: makes a queue unless one of that name exists.
-- ARGV  name, rate, t_us, burst, strict (1/0), max_attempts, vis_ms, idle_ms, backoff_base_ms,
--       backoff_max_ms, deadline_ms ('' for none)
-- Returns 1, or 0 when the queue exists.
if redis.call('EXISTS', META) == 1 then
  return 0
end
local now_ms = math.floor(now_us() / 1000)
-- What an expired queue of this name may have left (its token bucket, worker reports, each
-- with its own expiry) is not the new queue's.
redis.call('DEL', TAT, WORKERS)
redis.call('HSET', META, 'name', ARGV[1], 'rate', ARGV[2], 't_us', ARGV[3], 'burst', ARGV[4],
  'strict', ARGV[5], 'max_attempts', ARGV[6], 'vis_ms', ARGV[7], 'idle_ms', ARGV[8],
  'backoff_base_ms', ARGV[9], 'backoff_max_ms', ARGV[10], 'deadline_ms', ARGV[11],
  'active', '1', 'created_ms', int(now_ms), 'seq', '0', 'pushed', '0', 'started', '0',
  'completed', '0', 'failed', '0', 'lost', '0', 'first_start_ms', '0', 'last_done_ms', '0')
touch(meta_table())
return 1
