-- A token bucket shared by every process (resilience/routing/ratelimit.py's TokenBucket, in
-- Redis): capacity `limit` (per minute), refilled continuously at limit/60 per second, full
-- when new; timed by the Redis server's clock. rpm buckets take 1 per call; tpm buckets take
-- a call's estimate, then are charged the difference when the attempt ends (or refunded).
-- KEYS: 1 the bucket hash.
-- ARGV: 1 limit  2 the time in seconds, or '' (or absent) for the server's TIME (tests drive
--   a clock; production never sends one)  3 n (default 1)  4 'take' (default): take
--   min(n, limit) if the bucket holds that much; 'charge': take n whatever it holds (a
--   refund when negative), kept within [-limit, limit].
-- Returns {1 if taken (always for a charge) else 0, seconds until it holds n (a string)}.

local now = tonumber(ARGV[2])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local limit = tonumber(ARGV[1])
local n = tonumber(ARGV[3]) or 1
local charge = ARGV[4] == 'charge'
local rate = limit / 60
local held = redis.call('HMGET', KEYS[1], 'tk', 'ts')
local tokens = tonumber(held[1]) or limit
local updated = tonumber(held[2]) or now
if now > updated then tokens = math.min(limit, tokens + (now - updated) * rate) end
tokens = math.min(tokens, limit) -- the limit may have been lowered
local taken = 0
if charge then
  tokens = math.max(-limit, math.min(limit, tokens - n))
  taken = 1
else
  n = math.min(n, limit)
  if tokens >= n then
    tokens = tokens - n
    taken = 1
  end
end
redis.call('HSET', KEYS[1], 'tk', tokens, 'ts', now)
-- full again once refilled: then the key says nothing a new one would not
redis.call('PEXPIRE', KEYS[1], math.ceil((limit - tokens) / rate * 1000) + 1000)
local wait = 0
if tokens < n then wait = (n - tokens) / rate end
return {taken, tostring(wait)}
