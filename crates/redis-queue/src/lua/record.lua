
-- cronnode: the history entries of a released slot (Queue::record_released), fenced.
--
-- KEYS[1] fence            string, the highest fencing token seen (decimal u64)
-- KEYS[2] released index   sorted set, score release instant (unix ms), member slot
-- KEYS[3] released meta    hash, fire id -> meta, of the slot
-- KEYS[3 + j]              the history list (oldest first) of the j-th job of the call
--
-- ARGV[1] token, ARGV[2] history length, ARGV[3] history trim threshold, ARGV[4] the slot,
-- then per fire 3 fields: fire id, j (0: a meta that does not parse, dropped without an
-- entry), and its history entry (JSON; its enqueued_at is the slot's release instant).
--
-- Each entry is written only if its fire is still in the released meta, and the fire leaves
-- it in the same call: a call repeated after a lost answer writes nothing twice. When the
-- meta is empty (Redis deletes an empty hash), the slot leaves the released index.
--
-- Answer: {0, fence} when the token is below the fence, else {1, entries written}.

-- (fence.lua, in front of this, has checked ARGV[1] against KEYS[1] and defined `token`.)

local hist_len, hist_trim = tonumber(ARGV[2]), tonumber(ARGV[3])
local n = 0
for a = 5, #ARGV, 3 do
  local j = tonumber(ARGV[a + 1])
  if redis.call('HDEL', KEYS[3], ARGV[a]) == 1 and j > 0 then
    local hk = KEYS[3 + j]
    if redis.call('RPUSH', hk, ARGV[a + 2]) > hist_trim then
      redis.call('LTRIM', hk, -hist_len, -1)
    end
    n = n + 1
  end
end
if redis.call('EXISTS', KEYS[3]) == 0 then
  redis.call('ZREM', KEYS[2], ARGV[4])
end
return {1, n}
