
-- cronnode: release staged tasks into the platform's queues (Queue::release), fenced.
--
-- KEYS[1] fence            string, the highest fencing token seen (decimal u64)
-- KEYS[2] staging index    sorted set, score slot, member '<slot>:<priority>'
-- KEYS[3..5] queue0..2     the platform's lists
-- KEYS[6] released index   sorted set, score release instant (unix ms), member slot
-- KEYS[6 + 4l - 3]         staging list l = 1..L, oldest slot first
-- KEYS[6 + 4l - 2]         staged meta of list l's slot (hash)
-- KEYS[6 + 4l - 1]         staged task copies of list l's slot (hash)
-- KEYS[6 + 4l]             released meta of list l's slot (hash)
--
-- ARGV[1] token, ARGV[2] budget (most tasks moved element by element in this call), then per
-- staging list l: its priority (0..2), its index member and its slot.
--
-- Answer: {0, fence} when the token is below the fence (nothing moved), else
-- {1, moved_1, done_1, moved_2, done_2, ...}: tasks moved from list l, and 1 when list l is
-- now empty and out of the index (0: the budget ran out, call again). Lists after the one
-- where the budget ran out are not answered (not done). When a slot's last list is done, the
-- slot is marked released (mark.lua).
--
-- A staging list is built exactly as its queue is (LPUSH, oldest at the tail), so when the
-- queue is empty the list simply becomes the queue (RENAME, O(1) whatever its length). When
-- the queue holds fewer tasks than the list (and fit the budget), the queue's tasks are
-- appended behind the staged ones (they are older: RPUSH at the tail, where RPOP takes first)
-- and the list then becomes the queue: the cost is the shorter side. Otherwise the list's
-- oldest tasks are moved first to the head of the queue, a chunk at a time. Either way RPOP
-- consumers take the queue's older tasks, then the staged ones in staging order. Moving a task
-- here costs about 12,000 instructions in Redis (its bytes are hashed into a Lua string and
-- copied back), which is why a slot due with a backlog is prepared ahead instead
-- (queue/release.rs: the tasks sent with LPUSH in a MULTI, run by EXEC at the slot).

local UNPACK_MAX = 1000

-- (fence.lua, in front of this, has checked ARGV[1] against KEYS[1] and defined `token`;
-- mark.lua has defined `mark_released`.)

local budget = tonumber(ARGV[2])
local out, o = {1}, 1
local ms
for l = 1, (#KEYS - 6) / 4 do
  local key = KEYS[3 + 4 * l]
  local q = KEYS[3 + tonumber(ARGV[3 * l])]
  local n = redis.call('LLEN', key)
  local moved = 0
  local m = 0
  if n > 0 then m = redis.call('LLEN', q) end
  if n > 0 and m == 0 then
    redis.call('RENAME', key, q)
    moved = n
  elseif n > 0 and m <= n and m <= budget then
    budget = budget - m
    local i = 0
    while i < m do
      local j = math.min(i + UNPACK_MAX, m) - 1
      redis.call('RPUSH', key, unpack(redis.call('LRANGE', q, i, j)))
      i = j + 1
    end
    redis.call('RENAME', key, q)
    moved = n
  elseif n > 0 then
    if budget <= 0 then break end
    local m = math.min(n, budget)
    budget = budget - m
    moved = m
    while m > 0 do
      local k = math.min(m, UNPACK_MAX)
      -- the k oldest, newest first; pushed oldest first
      local items = redis.call('LRANGE', key, -k, -1)
      local r = {}
      for x = 1, k do r[x] = items[k + 1 - x] end
      redis.call('LPUSH', q, unpack(r))
      redis.call('LTRIM', key, 0, -k - 1)
      m = m - k
    end
  end
  local done = 0
  if moved == n then
    redis.call('ZREM', KEYS[2], ARGV[1 + 3 * l])
    ms = ms or now_ms()
    mark_released(KEYS[2], ARGV[2 + 3 * l], KEYS[4 + 4 * l], KEYS[5 + 4 * l], KEYS[6 + 4 * l],
      KEYS[6], ms)
    done = 1
  end
  out[o + 1] = moved
  out[o + 2] = done
  o = o + 2
end
return out
