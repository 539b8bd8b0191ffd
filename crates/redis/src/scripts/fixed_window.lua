-- fixed_window.lua: decides one request under `fixed-window` (common.lua is prepended).
-- KEYS[1]  the key's window, tollgate:{KEY}:f
-- ARGV[1]  PERIOD in µs
-- ARGV[2]  COUNT
-- ARGV[3]  cost; 0 peeks
-- Returns {allowed (1/0), limit, remaining, retry_after_ms, reset_after_ms, now in µs}.
return check_one(ALGORITHMS.f, KEYS[1], ARGV)
