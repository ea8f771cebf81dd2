-- cronnode: the instant a script runs (script/mod.rs puts this file first in every script that
-- writes an instant: the enqueue, the release, the prepared release).

-- Scripts that read TIME must be replicated by their effects (the default since Redis 5; this
-- makes it so on a server configured otherwise; a no-op on Redis 7). Before any write.
redis.replicate_commands()

-- The instant the script runs, in unix milliseconds (Redis's clock: the queue's own).
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
