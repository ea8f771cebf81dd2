-- cronnode: the fence check every fenced write script starts with (script/mod.rs puts this file
-- in front of each of them, and the fence-raising script is this file alone: the rule is
-- written once).
--
-- KEYS[1] fence            string, the highest fencing token seen (decimal u64)
-- ARGV[1] token            the caller's token
--
-- A token below the fence answers {0, fence} and the script writes nothing; a higher token
-- raises the fence. Defines `token` and `less` for the script that follows.

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
