
-- cronnode: the last command of a prepared release (queue/release.rs). The transaction that
-- runs it has just pushed a slot's staged tasks onto their queues and deleted the staging
-- lists, under WATCH of the fence and of those lists (a newer leader, or a change to the
-- slot since the tasks were read, makes EXEC refuse the whole transaction).
--
-- KEYS[1] staging index, KEYS[2] staged meta of the slot, KEYS[3] its task copies,
-- KEYS[4] its released meta, KEYS[5] the released index
-- ARGV[1] the slot, ARGV[2..] the index members of the lists the transaction moved

redis.call('ZREM', KEYS[1], unpack(ARGV, 2))
mark_released(KEYS[1], ARGV[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], now_ms())
return 1
