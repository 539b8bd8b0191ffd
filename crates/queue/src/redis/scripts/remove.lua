-- remove.lua: deletes the queue and every task in it. Returns 1, or 0 when there was none.
return redis.call('DEL', META, WAITING, DELAYED, INFLIGHT, DEAD, TASKS, TAT) > 0 and 1 or 0
