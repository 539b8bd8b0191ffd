-- gcra.lua: decides one request under `gcra` or `strict` (common.lua is prepended).
-- KEYS[1]  the key's GCRA state, tollgate:{KEY}:g
-- ARGV[1]  T = PERIOD / COUNT in µs, rounded up (at least 1)
-- ARGV[2]  BURST
-- ARGV[3]  cost; 0 peeks
-- Returns {allowed (1/0), limit, remaining, retry_after_ms, reset_after_ms, now in µs}.
return check_one(ALGORITHMS.g, KEYS[1], ARGV)
