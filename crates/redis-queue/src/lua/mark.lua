
-- cronnode: what a release does once a slot's last staging list has reached the queue (shared
-- by release.lua and the prepared release, which put this file in front of their code).
--
-- The slot's staged meta (fire id -> meta, written by enqueue.lua) becomes `released:<slot>`,
-- registered in the `released` sorted set with the release instant (unix ms, Redis's clock)
-- as its score: record.lua turns it into history entries whose enqueued_at is that instant.
-- The task copies, kept only to withdraw or restage, are dropped.
local function mark_released(index, slot, staged, copies, released, released_index, ms)
  if redis.call('ZCOUNT', index, slot, slot) > 0 then
    return
  end
  if redis.call('EXISTS', staged) == 1 then
    if redis.call('EXISTS', released) == 1 then
      -- A slot staged again after its release (a clock behind the slot's): keep both.
      local fields = redis.call('HGETALL', staged)
      for i = 1, #fields, 1000 do
        redis.call('HSET', released, unpack(fields, i, math.min(i + 999, #fields)))
      end
      redis.call('DEL', staged)
    else
      redis.call('RENAME', staged, released)
    end
    redis.call('ZADD', released_index, 'NX', ms, slot)
  end
  redis.call('UNLINK', copies)
end
