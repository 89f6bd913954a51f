-- Every state change of a shared breaker: one atomic call, timed by the Redis server's clock.
--
-- The state machine is the one of resilience/breaker/machine.py (read that module's docstring);
-- this script keeps it in Redis so that several processes share one breaker per
-- (tenant, provider) pair. Transitions are returned to the caller, which alone emits
-- their audit events, and published on the change channel for every process's local view.
--
-- KEYS: 1 breaker hash   2 its probe set (zset: token -> started_at)
--       3 the provider-wide gate hash (= KEYS[1] when the breaker is the gate)   4 its probes
--       5 provider-wide trips (zset: tenant -> at)   6 tenants of the current failure streak
--       7 the index of breakers that are not closed   8 the transition counter (generations)
-- ARGV: 1 op  2 tenant  3 provider  4 change channel  5 key prefix
--       6 the time in seconds, or '' for the server's TIME (tests drive a clock; production
--         never sends one)
--       7 failure_threshold  8 failure_rate  9 window_s  10 cooldown_s  11 max_cooldown_s
--       12 half_open_max_calls  13 probe_timeout_s  14 provider_wide_min_tenants
--       15 provider_wide_streak  16 idle ttl in seconds;  17.. the op's own arguments

local now = tonumber(ARGV[6])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local op, tenant, provider, channel, prefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local threshold, rate, window = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local base_cd, max_cd = tonumber(ARGV[10]), tonumber(ARGV[11])
local max_probes, probe_timeout = tonumber(ARGV[12]), tonumber(ARGV[13])
local min_tenants, streak_n, ttl = tonumber(ARGV[14]), tonumber(ARGV[15]), tonumber(ARGV[16])
local FOREVER = -1 -- retry_at of an admin open without a duration
local bucket = math.floor(now / (window / 10))
local B = {key = KEYS[1], probes = KEYS[2], tenant = tenant}
local G = {key = KEYS[3], probes = KEYS[4], tenant = '*'}
local has_gate = KEYS[3] ~= KEYS[1]
local TRIPS, STREAK, INDEX, GENERATIONS = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local events = {}

local WINDOW = {}
for i = 0, 9 do
  WINDOW[#WINDOW + 1] = 'wb' .. i
  WINDOW[#WINDOW + 1] = 'wc' .. i
  WINDOW[#WINDOW + 1] = 'wf' .. i
end

local function field(b, name, default)
  local v = redis.call('HGET', b.key, name)
  if v then return v end
  return default
end

local function state(b) return field(b, 'st', 'closed') end

-- the sliding window: ten buckets of (bucket number, calls, failures)
local function counts(b)
  local v = redis.call('HMGET', b.key, unpack(WINDOW))
  local calls, fails = 0, 0
  for i = 0, 9 do
    local wb = tonumber(v[i * 3 + 1])
    if wb and wb > bucket - 10 and wb <= bucket then
      calls = calls + tonumber(v[i * 3 + 2])
      fails = fails + tonumber(v[i * 3 + 3])
    end
  end
  return calls, fails
end

local function add(b, calls, fails)
  local slot = bucket % 10
  if tonumber(redis.call('HGET', b.key, 'wb' .. slot)) == bucket then
    if calls ~= 0 then redis.call('HINCRBY', b.key, 'wc' .. slot, calls) end
    if fails ~= 0 then redis.call('HINCRBY', b.key, 'wf' .. slot, fails) end
  else
    redis.call('HSET', b.key, 'wb' .. slot, bucket, 'wc' .. slot, calls, 'wf' .. slot, fails)
  end
end

local function clear(b) redis.call('HDEL', b.key, unpack(WINDOW)) end

local function view(b)
  local st = state(b)
  local h = redis.call('HMGET', b.key, 'gen', 'ra', 'cd', 'oa')
  local wait, open_for = 0, -1
  if st ~= 'closed' then
    local ra = tonumber(h[2]) or now
    if ra == FOREVER then wait = -1 elseif ra > now then wait = ra - now end
    if h[4] then open_for = now - tonumber(h[4]) end
  end
  local calls, fails = counts(b)
  -- how long ago each probe out was admitted: with all slots busy, their watchdog is the wait
  local ages = {}
  if st == 'half_open' then
    local held = redis.call('ZRANGE', b.probes, 0, -1, 'WITHSCORES')
    for i = 2, #held, 2 do ages[#ages + 1] = now - tonumber(held[i]) end
  end
  return {
    t = b.tenant, p = provider, s = st, g = tonumber(h[1] or '0'), w = wait,
    cd = tonumber(h[3] or base_cd), of = open_for, f = fails, c = calls,
    n = redis.call('ZCARD', b.probes), pa = ages,
  }
end

-- idle closed breakers expire; an open one lives until its cooldown is over, plus the ttl
local function touch(b)
  if redis.call('EXISTS', b.key) == 0 then return end
  local st = state(b)
  local ra = tonumber(field(b, 'ra', '0'))
  if st ~= 'closed' and ra == FOREVER then
    redis.call('PERSIST', b.key)
    redis.call('PERSIST', b.probes)
    return
  end
  local keep = ttl
  if st ~= 'closed' and ra > now then keep = keep + ra - now end
  keep = math.ceil(keep * 1000)
  redis.call('PEXPIRE', b.key, keep)
  redis.call('PEXPIRE', b.probes, keep)
end

local function publish(b)
  local v = view(b)
  local name = provider .. '\n' .. b.tenant
  if v.s == 'closed' then redis.call('HDEL', INDEX, name) else redis.call('HSET', INDEX, name, 1) end
  redis.call('PUBLISH', channel, cjson.encode(v))
end

local function transition(b, to, reason, kind, cooldown, detail)
  local from = state(b)
  if from == to then return false end
  redis.call('HSET', b.key, 'st', to, 'gen', redis.call('INCR', GENERATIONS))
  if to ~= 'half_open' then redis.call('DEL', b.probes) end
  if b == G and to == 'open' then redis.call('DEL', TRIPS) end
  -- a gate's streak starts over at each of its moves
  if b.key == KEYS[3] and redis.call('HEXISTS', b.key, 'sk') == 1 then
    redis.call('HSET', b.key, 'sk', 0)
  end
  local _, fails = counts(b)
  events[#events + 1] = {
    t = b.tenant, p = provider, from = from, to = to, reason = reason, kind = kind or '',
    cd = cooldown or -1, f = fails, d = detail or {}, at = now,
  }
  publish(b)
  return true
end

local function open(b, reason, kind, cooldown, tenants)
  if reason ~= 'retry_after' then redis.call('HSET', b.key, 'cd', cooldown) end
  redis.call('HSET', b.key, 'ra', now + cooldown, 'oa', now)
  redis.call('DEL', b.probes)
  local calls = counts(b)
  local detail = {calls = calls}
  if tenants then detail.tenants = tenants end
  return transition(b, 'open', reason, kind, cooldown, detail)
end

local function retry_after_cooldown(b, retry_after)
  if retry_after < 0 then return tonumber(field(b, 'cd', base_cd)) end
  return math.min(retry_after, max_cd)
end

local function open_provider_wide(tenants)
  table.sort(tenants)
  return open(G, 'provider_wide', nil, base_cd, tenants)
end

local function tripped(who)
  if min_tenants == 0 or not has_gate then return end
  redis.call('ZADD', TRIPS, now, who)
  redis.call('ZREMRANGEBYSCORE', TRIPS, '-inf', '(' .. (now - window))
  redis.call('PEXPIRE', TRIPS, math.ceil(window * 1000))
  if redis.call('ZCARD', TRIPS) >= min_tenants and state(G) == 'closed' then
    open_provider_wide(redis.call('ZRANGE', TRIPS, 0, -1))
  end
end

-- the provider-wide streak, on the gate's hash: 'sk' its provider-scoped failures (0: none
-- under way), 'ss' the provider's successes since it began. Successes end it only once its
-- failures fall below failure_rate of its outcomes: answers to calls sent before an outage
-- (stragglers) come back among its first failures and must not reset it.
local function count_streak_successes(n)
  if not has_gate or n <= 0 then return end
  local streak = tonumber(field(G, 'sk', '0'))
  if streak == 0 then return end
  local successes = redis.call('HINCRBY', G.key, 'ss', n)
  if streak < rate * (streak + successes) then redis.call('HSET', G.key, 'sk', 0) end
end

local function extend_streak(who)
  if tonumber(field(G, 'sk', '0')) == 0 then
    redis.call('DEL', STREAK)
    redis.call('HSET', G.key, 'ss', 0)
  end
  local streak = redis.call('HINCRBY', G.key, 'sk', 1)
  redis.call('SADD', STREAK, who)
  redis.call('PEXPIRE', STREAK, math.ceil(ttl * 1000))
  if streak_n > 0 and min_tenants > 0 and streak >= streak_n
      and redis.call('SCARD', STREAK) >= min_tenants and state(G) == 'closed' then
    redis.call('HSET', G.key, 'sk', 0)
    open_provider_wide(redis.call('SMEMBERS', STREAK))
  end
end

-- a probe's verdict; false when it came too late (its breaker moved on, or the watchdog
-- reclaimed it)
local function settle_probe(b, token, kind, retry_after)
  if redis.call('ZREM', b.probes, token) == 0 or state(b) ~= 'half_open' then return false end
  if kind == '' then
    clear(b)
    redis.call('HSET', b.key, 'cd', base_cd)
    transition(b, 'closed', 'probe_succeeded')
  elseif kind == 'rate_limited' then
    open(b, 'retry_after', kind, retry_after_cooldown(b, retry_after))
  else
    local cooldown = math.min(tonumber(field(b, 'cd', base_cd)) * 2, max_cd)
    open(b, 'probe_failed', kind, cooldown)
  end
  return true
end

local function count_failure(kind, scope, retry_after)
  add(B, 1, 1)
  if has_gate and scope == 'provider' then extend_streak(B.tenant) end
  if kind == 'rate_limited' then
    open(B, 'retry_after', kind, retry_after_cooldown(B, retry_after))
    return
  end
  local calls, fails = counts(B)
  if fails >= threshold and fails >= rate * calls then
    if open(B, 'threshold', kind, tonumber(field(B, 'cd', base_cd))) and scope == 'provider' then
      tripped(B.tenant)
    end
  end
end

-- admission when a process's local view is not closed: cooldown, half-open probes
local function admit(b, token)
  local st = state(b)
  if st == 'closed' then return {ok = true} end
  if st ~= 'half_open' then
    local ra = tonumber(field(b, 'ra', '0'))
    if ra == FOREVER then return {ok = false, w = -1} end
    if now < ra then return {ok = false, w = ra - now} end
    transition(b, 'half_open', 'cooldown_elapsed')
  end
  -- the watchdog reclaims probes past probe_timeout only when their slots are needed (as the
  -- memory breaker does): until then a late probe's verdict still counts
  if redis.call('ZCARD', b.probes) >= max_probes then
    redis.call('ZREMRANGEBYSCORE', b.probes, '-inf', now - probe_timeout)
  end
  if redis.call('ZCARD', b.probes) >= max_probes then
    local oldest = redis.call('ZRANGE', b.probes, 0, 0, 'WITHSCORES')
    local watchdog = tonumber(oldest[2]) + probe_timeout - now
    local cooldown = tonumber(field(b, 'cd', base_cd))
    return {ok = false, w = math.max(0, math.min(watchdog, cooldown))}
  end
  redis.call('ZADD', b.probes, now, token)
  return {ok = true, probe = token}
end

local reply = {}
if op == 'admit' then
  local token = ARGV[17]
  local own = admit(B, token)
  if not own.ok then
    reply = {refused = 'own', w = own.w, s = state(B)}
  elseif has_gate then
    local gate = admit(G, token .. 'g')
    if gate.ok then
      reply = {probe = own.probe or '', gprobe = gate.probe or ''}
    else
      if own.probe then redis.call('ZREM', B.probes, own.probe) end
      reply = {refused = 'gate', w = gate.w, s = state(G)}
    end
  else
    reply = {probe = own.probe or '', gprobe = ''}
  end
elseif op == 'fail' or op == 'ok' then
  local generation, token, gtoken = tonumber(ARGV[17]), ARGV[18], ARGV[19]
  local kind, scope, retry_after, successes = ARGV[20], ARGV[21], tonumber(ARGV[22]), tonumber(ARGV[23])
  -- successes counted here before this verdict (they came first); a breaker that moved since
  -- (not closed now) makes them late, as its generation makes them in memory
  if successes > 0 and state(B) == 'closed' then
    add(B, successes, 0)
    count_streak_successes(successes)
  end
  if gtoken ~= '' then
    if op == 'ok' or scope == 'provider' then
      settle_probe(G, gtoken, kind, retry_after)
    else
      redis.call('ZREM', G.probes, gtoken)
    end
  end
  local late = false
  if token ~= '' then
    late = not settle_probe(B, token, kind, retry_after)
  else
    -- an ordinary call (it may have been the gate's probe: then it comes here alone, and its
    -- success counts in the window like any other)
    local current = tonumber(field(B, 'gen', '0'))
    if state(B) ~= 'closed' or (generation > 0 and generation < current) then
      late = op == 'fail' or gtoken ~= ''
    elseif op == 'fail' then
      count_failure(kind, scope, retry_after)
    elseif gtoken ~= '' then
      add(B, 1, 0)
    end
  end
  if op == 'ok' and not late and (token ~= '' or gtoken ~= '') then
    count_streak_successes(1) -- a probe's success, or a call that was the gate's probe
  end
  reply = {late = late}
elseif op == 'release' then
  if ARGV[17] ~= '' then redis.call('ZREM', B.probes, ARGV[17]) end
  if ARGV[18] ~= '' then redis.call('ZREM', G.probes, ARGV[18]) end
elseif op == 'reset' then
  clear(B)
  redis.call('HSET', B.key, 'cd', base_cd)
  reply = {changed = transition(B, 'closed', 'admin_reset')}
elseif op == 'force' then
  local duration = tonumber(ARGV[17])
  if duration < 0 then redis.call('HSET', B.key, 'ra', FOREVER)
  else redis.call('HSET', B.key, 'ra', now + duration) end
  if state(B) == 'forced_open' then
    publish(B) -- a new duration: every process's view must learn it
    reply = {changed = false}
  else
    redis.call('HSET', B.key, 'oa', now)
    local cooldown = nil
    if duration >= 0 then cooldown = duration end
    reply = {changed = transition(B, 'forced_open', 'admin_open', nil, cooldown)}
  end
elseif op == 'adopt' then
  -- after an outage of Redis: a breaker a process opened on its own becomes shared,
  -- unless the shared state moved on meanwhile
  local st, wait, cooldown = ARGV[17], tonumber(ARGV[18]), tonumber(ARGV[19])
  if state(B) == 'closed' and st ~= 'closed' then
    if wait < 0 then redis.call('HSET', B.key, 'ra', FOREVER)
    else redis.call('HSET', B.key, 'ra', now + wait) end
    redis.call('HSET', B.key, 'st', st, 'cd', cooldown, 'oa', now,
      'gen', redis.call('INCR', GENERATIONS))
    publish(B)
  end
elseif op == 'mirror' then
  -- every breaker that is not closed, for a process that (re)connects; stale entries go
  local found = {}
  for _, name in ipairs(redis.call('HKEYS', INDEX)) do
    local cut = string.find(name, '\n', 1, true)
    local p, who = string.sub(name, 1, cut - 1), string.sub(name, cut + 1)
    local b = {key = prefix .. ':b:' .. p .. ':' .. who, probes = prefix .. ':p:' .. p .. ':' .. who, tenant = who}
    provider = p
    if state(b) == 'closed' then redis.call('HDEL', INDEX, name) else found[#found + 1] = view(b) end
  end
  return cjson.encode({v = found})
end
touch(B)
if has_gate then touch(G) end
local views = {view(B)}
if has_gate then views[2] = view(G) end
reply.e = events
reply.v = views
return cjson.encode(reply)
