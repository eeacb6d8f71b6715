"""Lua scripts of the Redis broker: each runs atomically inside Redis in one round trip.

Key layout (see docs/redis.md): per queue, ten streams ``<prefix>q:<queue>:<lane>`` (lane =
priority 0-9), each with one consumer group; a sorted set ``...:delayed`` whose members are
``<lane digit><16 hex chars><payload>`` scored by eta; a stream ``...:dead`` of dead letters;
a stream ``...:wake`` whose new entries wake blocked fetchers (delayed messages, a new lane); a
hash ``...:cursor`` where a search for abandoned claims resumes; the claims index
``<prefix>claims`` (on a cluster, ``...:claims`` per queue) of the queues that may hold claims;
a set ``...:lanes`` of the lanes ever published to (fetch reads only those, and lane 0).
Stream entries carry ``m`` (the envelope bytes) and, when the message was redelivered before
it was requeued, ``r`` (the redeliveries it already had), so requeueing never loses a count.
"""

from __future__ import annotations

GROUP = "taskq"  # the one consumer group of every stream
PUBLISH_CHUNK = 1000  # messages per PUBLISH call
LANES = 10
# Keys per queue passed to FETCH, in this order, followed by the queue registry and the claims index.
FETCH_KEYS_PER_QUEUE = LANES + 5  # lanes 0..9, delayed, wake, cursor hash, lanes in use, dead

# KEYS: every key the chunk writes.  ARGV: a list of runs, each an op, a key index and its
# operands: 'X' k n p1..pn (XADD each payload to stream k), 'Z' k n s1 m1..sn mn (ZADD),
# 'W' k (a wake entry on stream k, capped), 'S' k n m1..mn (SADD), 'L' k n m1..mn w (SADD to
# the lanes set k, and a wake entry on stream w when that added a lane).  A chunk of up to 1,000
# messages, whatever their lanes and etas, is one call: one round trip.
# Every key's type is checked before the first write: a key of another type (a foreign
# write) fails the whole chunk with nothing written, never half of it (a retry then
# duplicated the half that was written; Redis does not roll a script back).
PUBLISH = """
local kinds = {W = 'stream', X = 'stream', Z = 'zset', S = 'set', L = 'set'}
local function check(key, kind)
  local found = redis.call('TYPE', key)['ok']
  if found ~= 'none' and found ~= kind then
    return redis.error_reply('WRONGTYPE ' .. key .. ' holds a ' .. found .. ', not a ' .. kind)
  end
end
local i = 1
while i <= #ARGV do
  local op, key, n = ARGV[i], KEYS[tonumber(ARGV[i + 1])], tonumber(ARGV[i + 2])
  local bad = check(key, kinds[op]) or (op == 'L' and check(KEYS[tonumber(ARGV[i + 3 + n])], 'stream'))
  if bad then return bad end
  i = i + 3 + ((op == 'X' or op == 'S') and n or (op == 'Z' and 2 * n or (op == 'L' and n + 1 or 0)))
end
local added = 0
i = 1
while i <= #ARGV do
  local op, key, n = ARGV[i], KEYS[tonumber(ARGV[i + 1])], tonumber(ARGV[i + 2])
  if op == 'W' then
    redis.call('XADD', key, 'MAXLEN', '~', ARGV[i + 2], '*', 'w', '')
    i = i + 3
  elseif op == 'X' then
    for j = i + 3, i + 2 + n do redis.call('XADD', key, '*', 'm', ARGV[j]) end
    added, i = added + n, i + 3 + n
  elseif op == 'Z' then
    -- One ZADD per 500 messages, not one each (unpack stays far below Lua's stack limit).
    for j = i + 3, i + 2 + 2 * n, 1000 do redis.call('ZADD', key, unpack(ARGV, j, math.min(j + 999, i + 2 + 2 * n))) end
    added, i = added + n, i + 3 + 2 * n
  elseif op == 'L' then
    -- A lane new to the queue: blocked fetchers read only the lanes they know, so wake them.
    if redis.call('SADD', key, unpack(ARGV, i + 3, i + 2 + n)) > 0 then
      redis.call('XADD', KEYS[tonumber(ARGV[i + 3 + n])], 'MAXLEN', '~', 100, '*', 'w', '')
    end
    i = i + 4 + n
  else
    redis.call('SADD', key, unpack(ARGV, i + 3, i + 2 + n))
    i = i + 3 + n
  end
end
return added
"""

# A lane whose pending list is empty leaves the claims index, unless a blocking read marked it
# (FETCH step 5: its cursor hash field 'b<lane>' holds when that mark is due) and may still
# claim there, outside any script: then the lane stays, due when the mark is. Dropping it
# at once lost the claim that read took next (neither extended nor recovered).
_SETTLE = """
local function settle(index, cursor, lane, key, now)
  local mark = tonumber(redis.call('HGET', cursor, 'b' .. lane) or '')
  if mark and mark > tonumber(now) then
    redis.call('ZADD', index, mark, key)
  else
    redis.call('ZREM', index, key)
  end
end
"""

_FIELD = """
local function field(f, name)
  for i = 1, #f, 2 do
    if f[i] == name then return f[i + 1] end
  end
  return nil
end
"""

# KEYS: for each queue FETCH_KEYS_PER_QUEUE keys, then the registry, then the claims index.
# ARGV: group, consumer, max_count, now (unix seconds), min idle ms of an abandoned claim,
# seconds between looks at a queue that holds claims, idle ms after which a consumer that
# holds nothing is forgotten, 't', 'm', 'h' or '' (step 5; 'h' also reads no new entries),
# then per queue '1' or '0': sweep it for abandoned claims even if
# the index does not name it (a process's first look), then the queue names.  Returns
# {{queue index, lane, entry id, payload, redeliveries}..., {per queue: its next eta as a
# string or false}, {per queue: bitmask of the lanes in use}, tails}.  Lane 0 is always in use
# (a blocking read needs a stream to wait on); another lane once something was sent to it.
# tails is false when the call took something; else, per queue, the id of the last entry of
# its wake stream, then of each lane in use (lowest first), '0-0' for none: every entry up to
# there is delivered, so a read from these ids wakes on exactly what is new (docs/redis.md).
#
# The claims index (a sorted set of lane streams, scored by when to look for abandoned claims
# next) is written here, in the call that claims: so a lane that holds claims is always in
# it, even if the claiming worker is SIGKILLed the next instant. A lane is looked at when its
# score is due; a look that finds no claim left removes it (settle: not while a blocking
# read's mark on it is live).
FETCH = (
    _FIELD
    + _SETTLE
    + """
local group, consumer = ARGV[1], ARGV[2]
local want = tonumber(ARGV[3])
local now = ARGV[4]
local min_idle, recheck, forget_idle = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local mode = ARGV[8]  -- 't': return tails when nothing was taken; 'm', 'h': mark the queues (below)
local per = 15
local nq = (#KEYS - 2) / per
local registry, index = KEYS[#KEYS - 1], KEYS[#KEYS]
local out = {}

local claimed = {}
local function take(qi, lane, entry, delivered)
  local f = entry[2]
  if not f then return end  -- deleted while claimed: nothing to deliver
  local earlier = tonumber(field(f, 'r') or '0') or 0  -- a garbled count must not stop the fetch
  out[#out + 1] = {qi, lane, entry[1], field(f, 'm') or '', earlier + delivered - 1}
  claimed[(qi - 1) * per + 1 + lane] = true
  want = want - 1
end

local function make_group(key)
  redis.pcall('XGROUP', 'CREATE', key, group, '0', 'MKSTREAM')
end

-- 1. Delayed messages that are due move to their lane, the earliest first, up to PROMOTE
--    per queue per call (a bound on the script's run time; every fetch promotes, so due
--    messages move as fast as workers ask for them). The batch leaves the set in one
--    ZREMRANGEBYRANK, not one ZREM each. Redis keeps what a script wrote before an error, so
--    nothing may fail after a write while a moved member is still in the set: the members
--    handled are always the set's first ranks, and they are removed before any call that
--    can fail. A member that is not <lane digit><16 chars><payload> (written by something
--    else), or whose lane key is not a stream, goes to the dead letters, whole, with the reason.
local PROMOTE = 500
local function move_due(qi)
  local base = (qi - 1) * per
  local delayed = KEYS[base + 11]
  local head = redis.pcall('ZRANGE', delayed, 0, 0, 'WITHSCORES')
  if head.err then return nil end  -- not a sorted set: nothing of ours is delayed there
  if not (head[2] and tonumber(head[2]) <= tonumber(now)) then return head[2] end
  local moved = 0  -- members moved and still in the set: ranks 0 .. moved - 1
  local function drop_moved()
    if moved > 0 then redis.call('ZREMRANGEBYRANK', delayed, 0, moved - 1) end
    moved = 0
  end
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, PROMOTE)) do
    local lane = tonumber(string.match(member, '^%d') or '')
    local reason = 'malformed delayed entry (not <lane digit><16 chars><message>)'
    if lane and #member > 17 then
      local added = redis.pcall('XADD', KEYS[base + 1 + lane], '*', 'm', string.sub(member, 18))
      reason = false
      if type(added) == 'table' and added.err then
        if not string.find(added.err, 'WRONGTYPE', 1, true) then
          drop_moved()  -- another error (out of memory...): the fetch fails, this member stays
          error(added)
        end
        reason = 'delayed entry whose lane key is not a stream'
      end
    end
    if reason then
      drop_moved()  -- the calls below may fail
      redis.call('XADD', KEYS[base + 15], '*', 'id', 'malformed-delayed-' .. redis.sha1hex(member),
                 'reason', reason, 'at', now, 'lane', '0', 'm', member)
      redis.call('SADD', registry, ARGV[8 + nq + qi])
      redis.call('ZREM', delayed, member)
    else
      moved = moved + 1
    end
  end
  drop_moved()
  return redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')[2]
end

local dues = {}
for qi = 1, nq do
  dues[qi] = move_due(qi) or false
end

-- Lanes never published to are skipped: most queues use one or two priorities.
local present, masks = {}, {}
for qi = 1, nq do
  local base = (qi - 1) * per
  local mask = 1
  present[base + 1] = true
  for _, lane in ipairs(redis.call('SMEMBERS', KEYS[base + 14])) do
    lane = tonumber(lane)
    if lane and lane > 0 and lane < 10 and not present[base + 1 + lane] then
      present[base + 1 + lane] = true
      mask = mask + 2 ^ lane
    end
  end
  masks[qi] = mask
end

-- 2. Claims idle longer than the recovery time (their worker died) are taken over; this
--    bumps the stream's delivery counter, which is the redelivery count.  Only lanes the
--    claims index says are due (or, on a process's first look at a queue, lanes that hold
--    claims at all): most fetches scan no pending list.
--    Each lane's own score (ZMSCORE), not the index's earliest members: lanes due that no
--    call looks at (queues nobody consumes any more) would fill any such window for good.
local due = {}
if want > 0 then
  local mine = {}
  for at = 1, nq * per do
    if present[at] then mine[#mine + 1] = KEYS[at] end
  end
  local scores = redis.call('ZMSCORE', index, unpack(mine))
  for j = 1, #mine do
    local score = scores[j] and tonumber(scores[j])
    if score and score <= tonumber(now) then due[mine[j]] = true end
  end
end
local function pending(key)
  local p = redis.pcall('XPENDING', key, group)
  if type(p) == 'table' and not p.err then return tonumber(p[1]) or 0 end
  return 0
end
local unfinished, looked = {}, {}

local function recover(qi, lane, key)
  local base = (qi - 1) * per
  local cursor = redis.call('HGET', KEYS[base + 13], lane) or '0-0'
  -- XAUTOCLAIM scans up to 10 x COUNT pending entries per call: about 1000 per lane per
  -- pass here, so a long list of live claims is crossed in a few fetches.
  for _ = 1, math.min(50, math.max(4, math.ceil(100 / want))) do
    local res = redis.pcall('XAUTOCLAIM', key, group, consumer, min_idle, cursor, 'COUNT', want)
    if type(res) ~= 'table' or res.err then cursor = '0-0' break end
    for _, entry in ipairs(res[2]) do
      if type(entry) == 'table' and entry[2] then  -- Redis 6.2 lists deleted entries as nil
        local p = redis.call('XPENDING', key, group, entry[1], entry[1], 1)
        take(qi, lane, entry, p[1] and p[1][4] or 2)
      end
    end
    cursor = res[1]
    if cursor == '0-0' or want <= 0 then break end
  end
  redis.call('HSET', KEYS[base + 13], lane, cursor)
  if cursor ~= '0-0' then
    unfinished[base + 1 + lane] = true
    return
  end
  -- A full pass: forget consumers of dead processes that hold nothing.
  local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', key, group)
  if ok then
    for _, c in ipairs(consumers) do
      local name = field(c, 'name')
      if name ~= consumer and field(c, 'pending') == 0 and field(c, 'idle') > forget_idle then
        redis.call('XGROUP', 'DELCONSUMER', key, group, name)
      end
    end
  end
end

local function read_new(qi, lane, key)
  local res = redis.pcall('XREADGROUP', 'GROUP', group, consumer, 'COUNT', want, 'STREAMS', key, '>')
  if type(res) == 'table' and res.err then
    make_group(key)
    res = redis.pcall('XREADGROUP', 'GROUP', group, consumer, 'COUNT', want, 'STREAMS', key, '>')
    -- Not a stream (a foreign write): skip it, or what earlier lanes claimed would be stranded.
    if type(res) == 'table' and res.err then return end
  end
  if res then
    for _, entry in ipairs(res[1][2]) do take(qi, lane, entry, 1) end
  end
end

-- 3. Highest lane first across the queues (queue order breaks ties); within a lane, taken
--    over claims (older) before new entries; up to the count.
for lane = 9, 0, -1 do
  for qi = 1, nq do
    local at = (qi - 1) * per + 1 + lane
    if present[at] then
      if due[KEYS[at]] or (ARGV[8 + qi] == '1' and pending(KEYS[at]) > 0) then
        if want <= 0 then
          unfinished[at] = true  -- the batch is full: the next fetch scans this lane
        else
          looked[at] = true
          recover(qi, lane, KEYS[at])
        end
      end
      if want > 0 and mode ~= 'h' then read_new(qi, lane, KEYS[at]) end
    end
  end
end

-- 4. The claims index, per lane. An unfinished pass is due again at once; a finished one
--    looks again after `recheck` seconds while claims remain, and drops the lane when none
--    do (ACK drops it too, when it empties the pending list); a new claim makes its lane due
--    when that claim could first be abandoned (LT: an earlier look stays).
for qi = 1, nq do
  for lane = 0, 9 do
    local at = (qi - 1) * per + 1 + lane
    if present[at] then
      if unfinished[at] then
        redis.call('ZADD', index, now, KEYS[at])
      elseif looked[at] then
        if claimed[at] or pending(KEYS[at]) > 0 then
          redis.call('ZADD', index, tonumber(now) + recheck, KEYS[at])
        else
          settle(index, KEYS[(qi - 1) * per + 13], lane, KEYS[at], now)
        end
      elseif claimed[at] then
        redis.call('ZADD', index, 'LT', tonumber(now) + min_idle / 1000, KEYS[at])
      end
    end
  end
end

-- 5. Nothing taken, and the client will wait in a blocking read. 'm': that read claims
--    (XREADGROUP BLOCK, outside any script), so its lanes go into the index first, due when a
--    claim it takes could first be abandoned (its block is shorter than that): a SIGKILL
--    right after that read leaves its claims indexed. 't': the read only watches (XREAD from
--    these tails) and the claims are taken here, so nothing is marked.
--    The mark is kept in the cursor hash too (the latest one): an ACK or a look that empties
--    the lane's pending list before the read claims must not drop the lane (settle).
--    'h' (big messages): the client reads new entries in a plain XREADGROUP that follows this
--    call in the same pipeline (a script copies each entry into Lua and back: 15-25x a plain
--    read's cost for big ones), so its lanes are marked whatever was taken here.
if (#out == 0 and mode == 'm') or mode == 'h' then
  local mark = tonumber(now) + min_idle / 1000
  for qi = 1, nq do
    local cursor = KEYS[(qi - 1) * per + 13]
    for lane = 0, 9 do
      local at = (qi - 1) * per + 1 + lane
      if present[at] then
        redis.call('ZADD', index, 'LT', mark, KEYS[at])
        if (tonumber(redis.call('HGET', cursor, 'b' .. lane) or '') or 0) < mark then
          redis.call('HSET', cursor, 'b' .. lane, mark)
        end
      end
    end
  end
end
local tails = false
if #out == 0 and mode == 't' then
  tails = {}
  local function tail(key)
    local last = redis.pcall('XREVRANGE', key, '+', '-', 'COUNT', 1)
    if type(last) == 'table' and not last.err and last[1] then return last[1][1] end
    return '0-0'
  end
  for qi = 1, nq do
    local base = (qi - 1) * per
    local t = {tail(KEYS[base + 12])}
    for lane = 0, 9 do
      if present[base + 1 + lane] then t[#t + 1] = tail(KEYS[base + 1 + lane]) end
    end
    tails[qi] = t
  end
end
return {out, dues, masks, tails}
"""
)

def _on_owned_entries(action: str) -> str:
    """A script over KEYS (one stream per entry) and ARGV (group, consumer, then one entry id
    per key) that runs ``action`` (Lua; ``key``, ``group``, ``consumer``, ``id`` in scope) on
    each entry the consumer still owns, leaving one another consumer took over to it; returns
    how many it acted on."""
    return """
local group, consumer = ARGV[1], ARGV[2]
local done = 0
for i, key in ipairs(KEYS) do
  local id = ARGV[i + 2]
  local p = redis.pcall('XPENDING', key, group, id, id, 1)
  if type(p) == 'table' and not p.err and p[1] and p[1][2] == consumer then
    ACTION
    done = done + 1
  end
end
return done
""".replace("ACTION", action)


# Refreshes the idle time of the owned entries (XCLAIM JUSTID leaves the delivery counter alone).
EXTEND = _on_owned_entries("redis.call('XCLAIM', key, group, consumer, 0, id, 'JUSTID')")

# Hands the owned entries to a consumer name nobody extends, idle for a day: the next fetch's
# XAUTOCLAIM takes each at once and counts the delivery, as for a dead worker's claim.
ABANDON = _on_owned_entries(
    "redis.call('XCLAIM', key, group, consumer .. ':abandoned', 0, id, 'IDLE', 86400000, 'JUSTID')"
)

# KEYS: streams.  ARGV: group, consumer.  Refreshes the idle time of every entry the consumer
# owns in these streams (another process's: the prefork supervisor keeps its children's
# claims); a stream that does not exist yet is skipped.  Returns how many were kept.
EXTEND_OWNER = """
local group, consumer = ARGV[1], ARGV[2]
local kept = 0
for _, key in ipairs(KEYS) do
  local start = '-'
  while true do
    local p = redis.pcall('XPENDING', key, group, start, '+', 500, consumer)
    if type(p) ~= 'table' or p.err or #p == 0 then break end
    local args = {}
    for _, entry in ipairs(p) do args[#args + 1] = entry[1] end
    args[#args + 1] = 'JUSTID'  -- JUSTID: the delivery counter stays as it is
    redis.call('XCLAIM', key, group, consumer, 0, unpack(args))
    kept = kept + #p
    if #p < 500 then break end
    start = '(' .. p[#p][1]
  end
end
return kept
"""

# KEYS: streams, each once, then each one's cursor hash (same order), then the claims index.
# ARGV: group, consumer, now (unix seconds), then per stream a count n, the lowest and the
# highest of its ids, and the n entry ids.  Acks (XACK + XDEL) the entries this consumer
# still owns; an entry another consumer took over (XAUTOCLAIM after this one stalled) is the
# new owner's to ack: acking it here would delete a delivery that is running elsewhere.  The
# owner check is one XPENDING per stream over the batch's id range, filtered by consumer
# (COUNT n first: usually the answer is the batch itself).  Returns how many were acked.
ACK = (
    _SETTLE
    + """
local group, consumer, now = ARGV[1], ARGV[2], ARGV[3]
local index = KEYS[#KEYS]
local streams = (#KEYS - 1) / 2
local i, acked = 4, 0
for k = 1, streams do
  local key = KEYS[k]
  local n, low, high = tonumber(ARGV[i]), ARGV[i + 1], ARGV[i + 2]
  -- The common case first: the first n of ours in the range are the n ids named, in order,
  -- so every one is still ours and the ids go to XACK and XDEL as they came (no Lua tables
  -- of the ids: 10-15 us of a 64-message ack, `python -m bench.ack_cost`).
  local p = redis.pcall('XPENDING', key, group, low, high, n, consumer)
  local same = type(p) == 'table' and not p.err and #p == n
  if same then
    for j = 1, n do
      if p[j][1] ~= ARGV[i + 2 + j] then same = false break end
    end
  end
  local owned, first, last = ARGV, i + 3, i + 2 + n
  if not same then  -- ids out of order, others of ours between them, or one taken over
    local mine = {}
    while true do
      local p = redis.pcall('XPENDING', key, group, low, high, 1000, consumer)
      if type(p) ~= 'table' or p.err or #p == 0 then break end
      for _, entry in ipairs(p) do mine[entry[1]] = true end
      if #p < 1000 then break end
      low = '(' .. p[#p][1]
    end
    owned, first = {}, 1
    for j = i + 3, i + 2 + n do
      if mine[ARGV[j]] then owned[#owned + 1] = ARGV[j] end
    end
    last = #owned
  end
  for c = first, last, 500 do
    local to = math.min(c + 499, last)
    redis.call('XACK', key, group, unpack(owned, c, to))
    acked = acked + redis.call('XDEL', key, unpack(owned, c, to))
  end
  -- The last claim of the lane settled: nothing for recovery (or extend_owner) to look at,
  -- unless a blocking read marked the lane and may claim there yet (settle).
  if last >= first and redis.call('XPENDING', key, group)[1] == 0 then
    settle(index, KEYS[streams + k], string.match(key, '(%d)$'), key, now)
  end
  i = i + 3 + n
end
return acked
"""
)

# KEYS: streams.  ARGV: group, consumer, then one entry id per key.  Gives owned entries back
# at once as new entries of the same lane, carrying the redeliveries they had.
REQUEUE = (
    _FIELD
    + """
local group, consumer = ARGV[1], ARGV[2]
local moved = 0
for i, key in ipairs(KEYS) do
  local id = ARGV[i + 2]
  local p = redis.pcall('XPENDING', key, group, id, id, 1)
  if type(p) == 'table' and not p.err and p[1] and p[1][2] == consumer then
    local e = redis.call('XRANGE', key, id, id)
    if e[1] then
      local f = e[1][2]
      local earlier = (tonumber(field(f, 'r') or '0') or 0) + p[1][4] - 1
      if earlier > 0 then
        redis.call('XADD', key, '*', 'm', field(f, 'm') or '', 'r', earlier)
      else
        redis.call('XADD', key, '*', 'm', field(f, 'm') or '')
      end
      moved = moved + 1
    end
    redis.call('XACK', key, group, id)
    redis.call('XDEL', key, id)
  end
end
return moved
"""
)

# KEYS: stream, dead-letter stream, queue registry.  ARGV: group, entry id, message id,
# reason, now, lane, queue name, consumer.  Like ACK, only the claim's owner may do it.
DEAD_LETTER = (
    _FIELD
    + """
local p = redis.pcall('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if type(p) ~= 'table' or p.err or not p[1] or p[1][2] ~= ARGV[8] then return 0 end
local e = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
if not e[1] then return 0 end
redis.call('XADD', KEYS[2], '*', 'id', ARGV[3], 'reason', ARGV[4], 'at', ARGV[5], 'lane', ARGV[6],
           'm', field(e[1][2], 'm') or '')
redis.pcall('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[7])
return 1
"""
)

# KEYS: dead-letter stream, lanes 0..9, lanes-in-use set, wake stream.  ARGV: message ids to
# requeue (none = all).
REQUEUE_DEAD = (
    _FIELD
    + """
local wanted = nil
if #ARGV > 0 then
  wanted = {}
  for _, id in ipairs(ARGV) do wanted[id] = true end
end
local n = 0
for _, e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do
  local f = e[2]
  if not wanted or wanted[field(f, 'id')] then
    -- A lane that is not 0-9 (a foreign entry) must not stop the loop half-way: lane 0.
    local lane = tonumber(string.match(field(f, 'lane') or '', '^%d$') or '0')
    redis.call('XADD', KEYS[2 + lane], '*', 'm', field(f, 'm') or '')
    if redis.call('SADD', KEYS[12], lane) > 0 and KEYS[13] then  -- a new lane: wake blocked fetchers
      redis.call('XADD', KEYS[13], 'MAXLEN', '~', 100, '*', 'w', '')
    end
    redis.call('XDEL', KEYS[1], e[1])
    n = n + 1
  end
end
return n
"""
)

# KEYS: lanes 0..9, delayed.  ARGV: group, min idle ms of an abandoned claim.  Deletes what
# no live worker holds: unread entries, abandoned claims and delayed messages.
PURGE = (
    _FIELD
    + """
local group, min_idle = ARGV[1], ARGV[2]
local n = 0
local function delete(key, ids)
  for i = 1, #ids, 500 do
    local chunk = {unpack(ids, i, math.min(i + 499, #ids))}
    redis.pcall('XACK', key, group, unpack(chunk))
    n = n + redis.call('XDEL', key, unpack(chunk))
  end
end
for lane = 0, 9 do
  local key = KEYS[lane + 1]
  if redis.call('EXISTS', key) == 1 then
    local last, pending = '0-0', 0
    for _, g in ipairs(redis.call('XINFO', 'GROUPS', key)) do
      if field(g, 'name') == group then
        last, pending = field(g, 'last-delivered-id'), field(g, 'pending')
      end
    end
    if pending == 0 then
      n = n + redis.call('XLEN', key)
      redis.call('XTRIM', key, 'MAXLEN', 0)
    else
      while true do
        local ids = {}
        for _, e in ipairs(redis.call('XRANGE', key, '(' .. last, '+', 'COUNT', 1000)) do ids[#ids + 1] = e[1] end
        if #ids == 0 then break end
        delete(key, ids)
      end
      local stale = {}
      for _, p in ipairs(redis.call('XPENDING', key, group, 'IDLE', min_idle, '-', '+', 100000)) do
        stale[#stale + 1] = p[1]
      end
      delete(key, stale)
    end
  end
end
n = n + redis.call('ZCARD', KEYS[11])
redis.call('DEL', KEYS[11])
return n
"""
)
