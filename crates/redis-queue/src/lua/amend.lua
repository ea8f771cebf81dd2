
-- cronnode: withdraw staged fires, and restage others with a new task, fenced (Queue::amend).
-- What a leader does when a job is paused, deleted or changed before its staged slots.
--
-- KEYS[1] fence            string, the highest fencing token seen (decimal u64)
-- KEYS[2] cursors          hash, job id -> last enqueued slot (unix seconds)
-- KEYS[3] staging index    sorted set, score slot, member '<slot>:<priority>'
-- KEYS[3 + 5s - 4]         staged meta of slot s = 1..S (hash, fire id -> meta)
-- KEYS[3 + 5s - 3]         staged task copies of slot s (hash, fire id -> task JSON)
-- KEYS[3 + 5s - 2 + p]     staging list of slot s and priority p = 0..2
-- KEYS[3 + 5S + b]         dedupe bucket b = 1..B (hash, field fire id)
--
-- ARGV[1] token, ARGV[2] S, ARGV[3] B, ARGV[3 + s] slot s (unix seconds), then W and per
-- withdrawn fire 4 fields (slot s, bucket b, fire id, job id), then R and per restaged fire
-- 7 fields (slot s, bucket b, fire id, job id, priority, task JSON, meta).
-- A stored meta is '<cursor before>\t<version>\t<priority>\t<token>\t<job id>\t<node>'
-- (enqueue.lua writes it: the job's cursor before the fire was staged, '' if none, then the
-- meta it was sent); a restage sends the part after the first tab.
--
-- Withdraw: the task leaves its staging list, the meta and the copy go, the dedupe mark goes
-- (the slot may be enqueued again, by a resume's catch-up for instance), and the job's cursor
-- goes back to what it was before the fire was staged, if it is past that (no cursor then: no
-- cursor now; no cursor now: it stays so). No history entry is ever written for it.
-- Restage: the old task leaves its list, the new one goes to the head of the list of its
-- (maybe new) priority, the meta (keeping its cursor before) and copy are replaced; the cursor
-- is at least the slot.
-- A fire not staged (released already, withdrawn, or never staged) is left alone.
--
-- Answer: {0, fence} when the token is below the fence (nothing written), else {1, outcomes},
-- one character per fire, withdrawn ones first: 'W' withdrawn, 'R' restaged, 'Q' not staged
-- but enqueued (its dedupe mark is set: it is in the queue, or being released), 'N' not
-- staged and not enqueued.

-- (fence.lua, in front of this, has checked ARGV[1] against KEYS[1] and defined `token`.)

local ns, nb = tonumber(ARGV[2]), tonumber(ARGV[3])
local bkey0 = 3 + 5 * ns

local function skey(s, k)
  return KEYS[3 + 5 * (s - 1) + k]
end

local function not_staged(b, f)
  if redis.call('HEXISTS', KEYS[bkey0 + b], f) == 1 then return 'Q' end
  return 'N'
end

-- Removes the staged task of fire f of slot s; answers the job's cursor before the fire was
-- staged ('' if none), or nil when the fire was not staged.
local function take(s, f)
  local meta = redis.call('HGET', skey(s, 1), f)
  if not meta then return nil end
  local task = redis.call('HGET', skey(s, 2), f)
  local before, p = string.match(meta, '^([^\t]*)\t[^\t]*\t(%d)')
  p = tonumber(p)
  if task and p then
    redis.call('LREM', skey(s, 3 + p), 1, task)
  end
  redis.call('HDEL', skey(s, 1), f)
  redis.call('HDEL', skey(s, 2), f)
  return before or ''
end

local out = {}
local a = 4 + ns
local nw = tonumber(ARGV[a])
a = a + 1
for _ = 1, nw do
  local s, b, f, job = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), ARGV[a + 2], ARGV[a + 3]
  a = a + 4
  local before = take(s, f)
  if before then
    redis.call('HDEL', KEYS[bkey0 + b], f)
    local c = redis.call('HGET', KEYS[2], job)
    if c and before == '' then
      redis.call('HDEL', KEYS[2], job)
    elseif c and tonumber(c) > tonumber(before) then
      redis.call('HSET', KEYS[2], job, before)
    end
    out[#out + 1] = 'W'
  else
    out[#out + 1] = not_staged(b, f)
  end
end
local nr = tonumber(ARGV[a])
a = a + 1
for _ = 1, nr do
  local s, b, f, job = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), ARGV[a + 2], ARGV[a + 3]
  local p, task, meta = ARGV[a + 4], ARGV[a + 5], ARGV[a + 6]
  a = a + 7
  local before = take(s, f)
  if before then
    local slots = ARGV[3 + s]
    redis.call('ZADD', KEYS[3], slots, slots .. ':' .. p)
    redis.call('LPUSH', skey(s, 3 + tonumber(p)), task)
    redis.call('HSET', skey(s, 1), f, before .. '\t' .. meta)
    redis.call('HSET', skey(s, 2), f, task)
    local c = redis.call('HGET', KEYS[2], job)
    if (not c) or tonumber(c) < tonumber(slots) then
      redis.call('HSET', KEYS[2], job, slots)
    end
    out[#out + 1] = 'R'
  else
    out[#out + 1] = not_staged(b, f)
  end
end
return {1, table.concat(out)}
