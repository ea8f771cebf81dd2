
-- cronnode: slots that were not fired, recorded in their job's history (fenced, like every
-- write of a fire: a deposed leader records nothing).
--
-- KEYS[1] fence, KEYS[1 + i] the history list of the i-th entry's job (i = 1..N)
-- ARGV[1] token, ARGV[2] history length, ARGV[2 + i] the i-th entry (JSON)
--
-- Answer: {0, fence} when the token is below the fence (nothing written), else {1, token}.

-- (fence.lua, in front of this, has checked ARGV[1] against KEYS[1] and defined `token`.)
local len = tonumber(ARGV[2])
for i = 2, #KEYS do
  redis.call('RPUSH', KEYS[i], ARGV[i + 1])
  redis.call('LTRIM', KEYS[i], -len, -1)
end
return {1, token}
