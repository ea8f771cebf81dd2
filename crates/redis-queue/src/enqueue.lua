-- cronnode: fenced, deduplicated batch enqueue (one atomic call per batch).
--
-- KEYS[1] fence            string, the highest fencing token seen (decimal u64)
-- KEYS[2] cursors          hash, job id -> last enqueued slot (unix seconds); only advances
-- KEYS[3..5] queue0..2     the platform's lists
-- KEYS[6] delays           sorted set, score ready time (unix seconds), member delayed id
-- KEYS[7] delayed_jobs     hash, delayed id -> task JSON
-- KEYS[8] delays_counter   INCR counter issuing delayed ids
-- then for fire i (1-based): KEYS[8+2i-1] its dedupe bucket (a hash per slot minute, field
-- fire id), KEYS[8+2i] its job's history list (oldest first)
--
-- ARGV[1] token, ARGV[2] now (unix seconds), ARGV[3] history length, ARGV[4] history trim
-- threshold; then 8 fields per fire: fire id, job id, cursor slot ('' = do not move the
-- cursor), bucket TTL (ms), priority, delay (s, 0 = immediate), task JSON, history JSON.
--
-- Answer: {0, fence} when the token is below the fence (nothing written), else
-- {1, outcomes} with one character per fire: 'E' enqueued, 'D' duplicate.
--
-- Cost: per fire one RPUSH (its history); everything else is batched into a few variadic
-- calls per script call (HMGET/HSET of the dedupe buckets, LPUSH per queue, HMGET/HSET of
-- the cursors, the delayed set). Nothing here can fail on well-formed arguments (the Rust
-- side checks them), so no call is left half done.

local FIELDS = 8
local UNPACK_MAX = 1000

local function less(a, b)
  -- exact comparison of canonical decimal u64 (Lua numbers are doubles)
  if #a ~= #b then return #a < #b end
  return a < b
end

local token = ARGV[1]
local fence = redis.call('GET', KEYS[1])
if fence and less(token, fence) then
  return {0, fence}
end
if (not fence) or less(fence, token) then
  redis.call('SET', KEYS[1], token)
end

local function bulk(cmd, key, pre, items)
  local i, n = 1, #items
  while i <= n do
    local j = math.min(i + UNPACK_MAX - 1, n)
    if pre then
      redis.call(cmd, key, pre, unpack(items, i, j))
    else
      redis.call(cmd, key, unpack(items, i, j))
    end
    i = j + 1
  end
end

-- HMGET in chunks; answers one value (or false) per field, in order.
local function hmget(key, fields)
  local out, i, n = {}, 1, #fields
  while i <= n do
    local j = math.min(i + UNPACK_MAX - 1, n)
    local got = redis.call('HMGET', key, unpack(fields, i, j))
    for x = 1, j - i + 1 do out[i + x - 1] = got[x] end
    i = j + 1
  end
  return out
end

local now = tonumber(ARGV[2])
local hist_len = tonumber(ARGV[3])
local hist_trim = tonumber(ARGV[4])
local n = (#ARGV - 4) / FIELDS

-- 1. Dedupe: which fires are new? One HMGET and one HSET per bucket, not a SET per fire.
local buckets, border = {}, {}
for i = 1, n do
  local k = KEYS[7 + 2 * i]
  local b = buckets[k]
  if not b then
    b = {ids = {}, at = {}, ttl = 0}
    buckets[k] = b
    border[#border + 1] = k
  end
  local a = 4 + (i - 1) * FIELDS
  b.ids[#b.ids + 1] = ARGV[a + 1]
  b.at[#b.at + 1] = i
  local ttl = tonumber(ARGV[a + 4])
  if ttl > b.ttl then b.ttl = ttl end
end
local fresh = {}
for _, k in ipairs(border) do
  local b = buckets[k]
  local got = hmget(k, b.ids)
  local seen, new = {}, {}
  for x, id in ipairs(b.ids) do
    if (not got[x]) and not seen[id] then
      seen[id] = true
      fresh[b.at[x]] = true
      new[#new + 1] = id
      new[#new + 1] = token
    end
  end
  if #new > 0 then
    bulk('HSET', k, nil, new)
    -- The bucket lives as long as its longest-lived fire needs (TTLs only grow).
    if redis.call('PTTL', k) < b.ttl then
      redis.call('PEXPIRE', k, b.ttl)
    end
  end
end

-- 2. The new fires: push, history, cursor candidates.
local out = {}
local queues = {{}, {}, {}}
local delayed = {}
local cur, corder = {}, {}
for i = 1, n do
  if fresh[i] then
    local a = 4 + (i - 1) * FIELDS
    local delay = tonumber(ARGV[a + 6])
    if delay > 0 then
      delayed[#delayed + 1] = now + delay
      delayed[#delayed + 1] = ARGV[a + 7]
    else
      local q = queues[tonumber(ARGV[a + 5]) + 1]
      q[#q + 1] = ARGV[a + 7]
    end
    if ARGV[a + 3] ~= '' then
      local job, slot = ARGV[a + 2], tonumber(ARGV[a + 3])
      local c = cur[job]
      if not c then
        corder[#corder + 1] = job
        cur[job] = slot
      elseif slot > c then
        cur[job] = slot
      end
    end
    local hkey = KEYS[8 + 2 * i]
    -- RPUSH appends at the tail: no shifting of the list's head node on every entry.
    if redis.call('RPUSH', hkey, ARGV[a + 8]) > hist_trim then
      redis.call('LTRIM', hkey, -hist_len, -1)
    end
    out[i] = 'E'
  else
    out[i] = 'D'
  end
end

-- LPUSH of v1..vn leaves vn at the head; RPOP takes v1 first: input order is kept.
for p = 1, 3 do
  bulk('LPUSH', KEYS[2 + p], nil, queues[p])
end

if #delayed > 0 then
  -- The task is in the hash before its id is in the set, so a mover never finds an id
  -- without its task (and the script is atomic anyway).
  local count = #delayed / 2
  local last = redis.call('INCRBY', KEYS[8], count)
  local hash, zset = {}, {}
  for k = 1, count do
    local id = string.format('%d', last - count + k)
    hash[#hash + 1] = id
    hash[#hash + 1] = delayed[2 * k]
    zset[#zset + 1] = delayed[2 * k - 1]
    zset[#zset + 1] = id
  end
  bulk('HSET', KEYS[7], nil, hash)
  bulk('ZADD', KEYS[6], nil, zset)
end

-- 3. Cursors only advance: an older slot enqueued late does not move one back.
if #corder > 0 then
  local old = hmget(KEYS[2], corder)
  local set = {}
  for x, job in ipairs(corder) do
    if (not old[x]) or tonumber(old[x]) < cur[job] then
      set[#set + 1] = job
      set[#set + 1] = string.format('%d', cur[job])
    end
  end
  bulk('HSET', KEYS[2], nil, set)
end

return {1, table.concat(out)}
