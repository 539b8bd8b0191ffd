-- reset.lua: forgets a key under every algorithm family.
-- KEYS[1..3]  the key's state keys, tollgate:{KEY}:g, :s and :f (one cluster slot)
-- Returns how many of them existed.
return redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
