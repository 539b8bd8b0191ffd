-- base.lua: what every tollgate script shares (the limit checks and the job queues): the
-- clock, whole numbers, errors that name their key, and reading a GCRA state. The crate
-- prepends it, before common.lua for the limit checks; tollgate-queue prepends it alone, as
-- each call of a script runs its whole text and the queues need none of the algorithms.
--
-- Time is whole microseconds since the Unix epoch, read from Redis's TIME, so every client
-- host decides on one clock. Lua numbers are doubles, exact for whole numbers below 2^53;
-- the Rust side rejects limits whose spans could leave that range. Numbers reach Redis
-- commands through int(), never as bare Lua numbers, which Redis would print with 14
-- significant digits.

-- Before Redis 5, a script that writes after reading TIME must replicate its effects.
if redis.replicate_commands then
  redis.replicate_commands()
end

local function int(n)
  return string.format('%.0f', n)
end

local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- floor(a / b) for whole a >= 0 and b > 0, exact below 2^53 (a double division alone may
-- round onto the next whole number).
local function floor_div(a, b)
  local q = math.floor(a / b)
  local r = a - q * b
  if r < 0 then
    return q - 1
  elseif r >= b then
    return q + 1
  end
  return q
end

-- A wait in µs as whole milliseconds, rounded up: a wait is never reported too short.
local function ceil_ms(us)
  if us <= 0 then
    return 0
  end
  return floor_div(us + 999, 1000)
end

-- Lets the key expire once its state is back to full capacity at `deadline` (µs). PEXPIREAT
-- is on the same clock as TIME, and Redis drops a key only when its clock is past the given
-- millisecond, so rounding up keeps the state at least until its deadline.
local function expire_at(key, deadline)
  redis.call('PEXPIREAT', key, int(floor_div(deadline + 999, 1000)))
end

local function bad_state(key, what)
  error({ err = 'WRONGTYPE tollgate: ' .. key .. ' does not hold ' .. what })
end

-- Runs a command on `key`, naming the key and what it should hold if Redis finds another
-- type there (Redis's own WRONGTYPE message does not say which key).
local function call_on(key, what, ...)
  local r = redis.pcall(...)
  if type(r) == 'table' and r.err then
    if string.find(r.err, 'WRONGTYPE', 1, true) then
      bad_state(key, what)
    end
    error(r)
  end
  return r
end

-- GCRA (gcra, strict): the state is the theoretical arrival time TAT in µs, a string.
local function gcra_tat(key)
  local v = call_on(key, 'a GCRA arrival time', 'GET', key)
  if not v then
    return 0
  end
  local tat = tonumber(v)
  if not tat then
    bad_state(key, 'a GCRA arrival time')
  end
  return tat
end
