-- cronnode: fenced, deduplicated batch enqueue (one atomic call per batch).
--
-- KEYS[1] fence            string, the highest fencing token seen (decimal u64)
-- KEYS[2] cursors          sorted set, member job id, score last enqueued slot (unix seconds)
-- KEYS[3..5] queue0..2     the platform's lists
-- KEYS[6] delays           sorted set, score ready time (unix seconds), member delayed id
-- KEYS[7] delayed_jobs     hash, delayed id -> task JSON
-- KEYS[8] delays_counter   INCR counter issuing delayed ids
-- then for fire i (1-based): KEYS[8+2i-1] its dedupe key, KEYS[8+2i] its job's history list
--
-- ARGV[1] token, ARGV[2] now (unix seconds), ARGV[3] history length, ARGV[4] history trim
-- threshold; then 7 fields per fire: job id, cursor slot ('' = do not move the cursor),
-- dedupe TTL (ms), priority, delay (s, 0 = immediate), task JSON, history entry JSON.
--
-- Answer: {0, fence} when the token is below the fence (nothing written), else
-- {1, outcomes} with one character per fire: 'E' enqueued, 'D' duplicate.
--
-- Per fire it does the least it can: SET NX and one LPUSH of history; the pushes, the cursor
-- moves and the delayed set are batched into a few variadic calls at the end. Nothing here can
-- fail on well-formed arguments (the Rust side checks them), so no batch is left half done.

local FIELDS = 7
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

local now = tonumber(ARGV[2])
local hist_len = tonumber(ARGV[3])
local hist_trim = tonumber(ARGV[4])
local n = (#ARGV - 4) / FIELDS
local out = {}
local queues = {{}, {}, {}}
local delayed = {}
local cursor = {}

for i = 1, n do
  local a = 4 + (i - 1) * FIELDS
  if redis.call('SET', KEYS[7 + 2 * i], token, 'NX', 'PX', ARGV[a + 3]) then
    local delay = tonumber(ARGV[a + 5])
    if delay > 0 then
      delayed[#delayed + 1] = now + delay
      delayed[#delayed + 1] = ARGV[a + 6]
    else
      local q = queues[tonumber(ARGV[a + 4]) + 1]
      q[#q + 1] = ARGV[a + 6]
    end
    if ARGV[a + 2] ~= '' then
      cursor[#cursor + 1] = ARGV[a + 2]
      cursor[#cursor + 1] = ARGV[a + 1]
    end
    local hkey = KEYS[8 + 2 * i]
    if redis.call('LPUSH', hkey, ARGV[a + 7]) > hist_trim then
      redis.call('LTRIM', hkey, 0, hist_len - 1)
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
    local id = tostring(last - count + k)
    hash[#hash + 1] = id
    hash[#hash + 1] = delayed[2 * k]
    zset[#zset + 1] = delayed[2 * k - 1]
    zset[#zset + 1] = id
  end
  bulk('HSET', KEYS[7], nil, hash)
  bulk('ZADD', KEYS[6], nil, zset)
end

-- GT: a cursor only ever advances (an older slot enqueued late does not move it back).
bulk('ZADD', KEYS[2], 'GT', cursor)

return {1, table.concat(out)}
