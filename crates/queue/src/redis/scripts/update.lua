-- update.lua: new settings, live (the next reserve uses them).
-- ARGV  rate, t_us, burst, strict, deadline_ms ('' none), active ('1'/'0'/'' keep)
-- Returns 1, or 0 when the queue does not exist.
if redis.call('EXISTS', META) == 0 then
  return 0
end
redis.call('HSET', META, 'rate', ARGV[1], 't_us', ARGV[2], 'burst', ARGV[3], 'strict', ARGV[4],
  'deadline_ms', ARGV[5])
if ARGV[6] ~= '' then
  redis.call('HSET', META, 'active', ARGV[6])
end
touch(meta_table())
return 1
