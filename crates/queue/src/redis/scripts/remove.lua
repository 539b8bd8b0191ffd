-- remove.lua: deletes the queue and every task in it. Returns 1, or 0 when there was none.
local existed = redis.call('EXISTS', META) == 1
redis.call('DEL', META, WAITING, DELAYED, INFLIGHT, DEAD, TASKS, TAT, WORKERS)
return existed and 1 or 0
