
-- cronnode: fenced, deduplicated batch enqueue (one atomic call per batch). The same script
-- stages fires ahead of their slot (Queue::stage): then the tasks go to staging lists (one per
-- slot and priority, registered in the staging index) instead of the platform's queues, and
-- each staged fire is recorded (its meta and a copy of its task, per slot) so it can be
-- withdrawn or restaged (amend.lua) and its history written at its release (record.lua).
--
-- KEYS[1] fence            string, the highest fencing token seen (decimal u64)
-- KEYS[2] cursors          hash, job id -> last enqueued slot (unix seconds)
-- KEYS[3] delays           sorted set, score ready time (unix seconds), member delayed id
-- KEYS[4] delayed_jobs     hash, delayed id -> task JSON
-- KEYS[5] delays_counter   INCR counter issuing delayed ids
-- KEYS[6] staging index    sorted set, score slot (unix seconds), member '<slot>:<priority>'
-- KEYS[6 + t]              target list t = 1..T: a platform queue, or a staging list
-- KEYS[6 + T + b]          dedupe bucket b (a hash per slot minute, field fire id), b = 1..B
-- KEYS[6 + T + B + 2h - 1] staged meta of staged slot h = 1..H (hash, fire id -> meta: the
--                          job's cursor before this call ('' if none), a tab, the meta sent)
-- KEYS[6 + T + B + 2h]     staged task copies of slot h (hash, fire id -> task JSON)
-- KEYS[6 + T + B + 2H + j] the history list (oldest first) of the j-th distinct job, in the
--                          order the jobs first appear among the fires (direct calls only)
--
-- ARGV[1] token, ARGV[2] history length, ARGV[3] history trim threshold, ARGV[4] T, ARGV[5] B,
-- ARGV[6] H (0: a direct call), then per target t two fields: its index score and member
-- ('' '' for a platform queue, which has no index entry), then per bucket b the TTL (ms) it
-- must have at least.
-- Then runs of fires that share everything but the job and the fire id, in input order:
-- 8 header fields (count, bucket b, target t (0 for delayed runs), ready (unix seconds when a
-- delayed task becomes ready, 0 = immediate), cursor slot ('' = do not move the cursor),
-- history head, history tail, staged slot h (0 in a direct call)), then per fire: fire id,
-- job id, task JSON, and in a staged call its meta.
-- A direct fire's history entry is '{' .. head .. <now, unix ms> .. ',"fire_id":"' .. fire id
-- .. tail: its enqueued_at is the instant the task reached the queue, by Redis's clock.
--
-- Answer: {0, fence} when the token is below the fence (nothing written), else
-- {1, outcomes} with one character per fire: 'E' enqueued (or staged), 'D' duplicate.
--
-- Cost (BENCHMARKS.md): Lua hashes every byte of every string it is given or makes, so what
-- is common to a run is sent once and no string is made twice. Per new direct fire one RPUSH
-- (its history); everything else is batched into a few variadic calls per script call. Nothing
-- here can fail on well-formed arguments (the Rust side checks them), so no call is left
-- half done.

local HEAD = 8
local UNPACK_MAX = 1000

-- (fence.lua, in front of this, has checked ARGV[1] against KEYS[1] and defined `token`.)

local function bulk(cmd, key, items)
  local i, n = 1, #items
  while i <= n do
    local j = math.min(i + UNPACK_MAX - 1, n)
    redis.call(cmd, key, unpack(items, i, j))
    i = j + 1
  end
end

-- HMGET in chunks; answers one value (or false) per field, in order.
local function hmget(key, fields)
  local n = #fields
  if n <= UNPACK_MAX then
    return redis.call('HMGET', key, unpack(fields))
  end
  local out, i = {}, 1
  while i <= n do
    local j = math.min(i + UNPACK_MAX - 1, n)
    local got = redis.call('HMGET', key, unpack(fields, i, j))
    for x = 1, j - i + 1 do out[i + x - 1] = got[x] end
    i = j + 1
  end
  return out
end

local hist_len = tonumber(ARGV[2])
local hist_trim = tonumber(ARGV[3])
local nt = tonumber(ARGV[4])
local nb = tonumber(ARGV[5])
local nh = tonumber(ARGV[6])
local per_fire = (nh > 0) and 4 or 3
local first = 7 + 2 * nt + nb
local nargs = #ARGV
local bkey0 = 6 + nt
local ttl0 = 6 + 2 * nt
local hkey0 = bkey0 + nb

-- 0. The staging lists enter the index before anything is pushed into them (the same atomic
-- call, so no staged list is ever missing from the index). A member naming a list that ends
-- up empty (every fire a duplicate) is harmless: the release drops it.
local members, nm = {}, 0
for t = 1, nt do
  local score = ARGV[5 + 2 * t]
  if score ~= '' then
    members[nm + 1] = score
    members[nm + 2] = ARGV[6 + 2 * t]
    nm = nm + 2
  end
end
if nm > 0 then
  redis.call('ZADD', KEYS[6], unpack(members))
end

-- 1. Dedupe: which fires are new? One HMGET and one HSET per bucket, not a SET per fire.
local bids, bat = {}, {}
for b = 1, nb do
  bids[b] = {}
  bat[b] = {}
end
-- The history key of each job, as the jobs first appear (direct calls); the jobs of a staged
-- call, to read their cursors before the call moves them.
local hkey, nj = {}, hkey0 + 2 * nh
local sjobs, seen_job = {}, {}
local a, i = first, 0
while a <= nargs do
  local count, b = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local ids, at = bids[b], bat[b]
  local m = #ids
  local p = a + HEAD
  for k = 1, count do
    ids[m + k] = ARGV[p]
    at[m + k] = i + k
    local job = ARGV[p + 1]
    if nh == 0 then
      if not hkey[job] then
        nj = nj + 1
        hkey[job] = KEYS[nj]
      end
    elseif not seen_job[job] then
      seen_job[job] = true
      sjobs[#sjobs + 1] = job
    end
    p = p + per_fire
  end
  i = i + count
  a = p
end
local fresh = {}
for b = 1, nb do
  local ids = bids[b]
  if #ids > 0 then
    local key = KEYS[bkey0 + b]
    local got = hmget(key, ids)
    local at = bat[b]
    local seen, new, nn = {}, {}, 0
    for x = 1, #ids do
      local id = ids[x]
      if (not got[x]) and not seen[id] then
        seen[id] = true
        fresh[at[x]] = true
        new[nn + 1] = id
        new[nn + 2] = token
        nn = nn + 2
      end
    end
    if nn > 0 then
      bulk('HSET', key, new)
      -- The bucket lives as long as its longest-lived fire needs (TTLs only grow).
      local ttl = tonumber(ARGV[ttl0 + b])
      if redis.call('PTTL', key) < ttl then
        redis.call('PEXPIRE', key, ttl)
      end
    end
  end
end

-- A staged fire's meta starts with its job's cursor before this call: a withdrawal gives the
-- cursor back to it (amend.lua).
local before = {}
if #sjobs > 0 then
  local got = hmget(KEYS[2], sjobs)
  for x, job in ipairs(sjobs) do before[job] = got[x] or '' end
end

-- 2. The new fires: push (or stage), history or staged record, cursor candidates.
-- 'D' at the duplicates; the rest are 'E' (filled in only when there is a duplicate).
local out, dups = {}, false
local targets, tn = {}, {}
for t = 1, nt do
  targets[t] = {}
  tn[t] = 0
end
local metas, copies = {}, {}
for h = 1, nh do
  metas[h] = {}
  copies[h] = {}
end
local delayed, nd = {}, 0
-- cursor candidates: job -> slot (number), and the slot as sent (the canonical decimal the
-- Rust side wrote, so no number is formatted here)
local cur, curs, corder, nc = {}, {}, {}, 0
local ms = (nh == 0) and now_ms() or 0
a, i = first, 0
while a <= nargs do
  local count = tonumber(ARGV[a])
  local tg = tonumber(ARGV[a + 2])
  local q, n = targets[tg], tn[tg]
  local ready = tonumber(ARGV[a + 3])
  local slots = ARGV[a + 4]
  local slot = slots ~= '' and tonumber(slots)
  local head = '{' .. ARGV[a + 5] .. ms .. ',"fire_id":"'
  local tail = ARGV[a + 6]
  local h = tonumber(ARGV[a + 7])
  local meta, copy = metas[h], copies[h]
  local p = a + HEAD
  for _ = 1, count do
    i = i + 1
    if fresh[i] then
      local job = ARGV[p + 1]
      if ready > 0 then
        delayed[nd + 1] = ready
        delayed[nd + 2] = ARGV[p + 2]
        nd = nd + 2
      else
        n = n + 1
        q[n] = ARGV[p + 2]
      end
      if slot then
        local c = cur[job]
        if not c then
          nc = nc + 1
          corder[nc] = job
          cur[job], curs[job] = slot, slots
        elseif slot > c then
          cur[job], curs[job] = slot, slots
        end
      end
      if h > 0 then
        local m = #meta
        meta[m + 1] = ARGV[p]
        meta[m + 2] = before[job] .. '\t' .. ARGV[p + 3]
        copy[m + 1] = ARGV[p]
        copy[m + 2] = ARGV[p + 2]
      else
        local hk = hkey[job]
        -- RPUSH appends at the tail: no shifting of the list's head node on every entry.
        if redis.call('RPUSH', hk, head .. ARGV[p] .. tail) > hist_trim then
          redis.call('LTRIM', hk, -hist_len, -1)
        end
      end
    else
      out[i] = 'D'
      dups = true
    end
    p = p + per_fire
  end
  if tg > 0 then tn[tg] = n end
  a = p
end

-- LPUSH of v1..vn leaves vn at the head; RPOP takes v1 first: input order is kept.
-- Staging lists are built the same way, so a staging list is laid out as its queue would be.
for t = 1, nt do
  bulk('LPUSH', KEYS[6 + t], targets[t])
end
for h = 1, nh do
  bulk('HSET', KEYS[hkey0 + 2 * h - 1], metas[h])
  bulk('HSET', KEYS[hkey0 + 2 * h], copies[h])
end

if #delayed > 0 then
  -- The task is in the hash before its id is in the set, so a mover never finds an id
  -- without its task (and the script is atomic anyway).
  local count = #delayed / 2
  local last = redis.call('INCRBY', KEYS[5], count)
  local hash, zset = {}, {}
  for k = 1, count do
    local id = string.format('%d', last - count + k)
    hash[#hash + 1] = id
    hash[#hash + 1] = delayed[2 * k]
    zset[#zset + 1] = delayed[2 * k - 1]
    zset[#zset + 1] = id
  end
  bulk('HSET', KEYS[4], hash)
  bulk('ZADD', KEYS[3], zset)
end

-- 3. Cursors only advance here: an older slot enqueued late does not move one back (only a
-- withdrawal does, amend.lua).
if #corder > 0 then
  local old = hmget(KEYS[2], corder)
  local set = {}
  for x, job in ipairs(corder) do
    if (not old[x]) or tonumber(old[x]) < cur[job] then
      set[#set + 1] = job
      set[#set + 1] = curs[job]
    end
  end
  bulk('HSET', KEYS[2], set)
end

if not dups then
  return {1, string.rep('E', i)}
end
for x = 1, i do
  if not out[x] then out[x] = 'E' end
end
return {1, table.concat(out)}
