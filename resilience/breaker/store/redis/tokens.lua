-- One request-rate token from a bucket shared by every process (resilience/routing/ratelimit.py's
-- TokenBucket, in Redis): capacity rpm, refilled continuously at rpm/60 per second, full
-- when new; timed by the Redis server's clock.
-- KEYS: 1 the bucket hash.  ARGV: 1 rpm  2 the time in seconds, or '' (or absent) for the
-- server's TIME (tests drive a clock; production never sends one).
-- Returns {1 if a token was taken else 0, seconds until the next token (a string)}.

local now = tonumber(ARGV[2])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local rpm = tonumber(ARGV[1])
local rate = rpm / 60
local held = redis.call('HMGET', KEYS[1], 'tk', 'ts')
local tokens = tonumber(held[1]) or rpm
local updated = tonumber(held[2]) or now
if now > updated then tokens = math.min(rpm, tokens + (now - updated) * rate) end
tokens = math.min(tokens, rpm) -- the limit may have been lowered
local taken = 0
if tokens >= 1 then
  tokens = tokens - 1
  taken = 1
end
redis.call('HSET', KEYS[1], 'tk', tokens, 'ts', now)
-- full again after at most a minute: then the key says nothing a new one would not
redis.call('PEXPIRE', KEYS[1], 61000)
local wait = 0
if tokens < 1 then wait = (1 - tokens) / rate end
return {taken, tostring(wait)}
