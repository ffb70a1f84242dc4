"""The decisions: one atomic Lua script in Redis, and an in-process limiter with the same semantics.

A scope is one limited thing (a key, an organisation, a model) with up to five limits. Admission
checks every limit of every scope of a request and, only if all pass, takes them all: one request
(and its token reservation) in each sliding window, a concurrency lease, the reserved tokens on
today's and this month's counters. Settling moves the token counters from the reservation to what
was used, and gives the lease back.

A budget (keys and organisations: micro-roubles a calendar month) works like the monthly token quota
with money: admission reserves the request's upper-bound cost, settling moves it to the cost billed.
Its counter is never created by the script: a missing one (a new month, a Redis that lost its data)
refuses with kind SEED, and the caller seeds it from the database's month-to-date spend
(apps/limits/services.py) and asks again.

Sliding windows are counted in WINDOW_BUCKETS sub-buckets of period/WINDOW_BUCKETS each, keeping
the current bucket and the WINDOW_BUCKETS before it: a window is between one period and one
period plus a bucket long, so no period-long stretch ever holds more than the limit.
Concurrency leases expire LEASE_MS after their last renewal (apps/common/leases.py renews them), so a
killed worker's slots come back.
"""

import time
from dataclasses import dataclass

from apps.common.leases import LEASE_MS
from apps.common.rates import Limits

WINDOW_BUCKETS = 10
DAY_TTL = 2 * 86400
MONTH_TTL = 32 * 86400
NEVER = -1  # a refusal that waiting cannot cure (one request larger than the limit itself)
CALENDAR = -2  # a refusal that lasts until the next day or month (the caller knows the calendar)
SEED = "seed"  # the refused scope's budget counter is missing: seed it, then ask again


@dataclass(frozen=True, slots=True)
class Scope:
    """One limited thing: `prefix` names its Redis keys, `spec` is its limits as the script reads them."""

    prefix: str
    label: str  # for messages: "API key xr-1234abcd", "organisation 7", "model gigachat/GigaChat-2"
    limits: Limits
    # (requests, period ms, tokens, period ms, concurrent, tokens a day, a month, budget + 1); 0: no limit
    numbers: tuple
    args: tuple  # ("prefix n1 n2 …",) encoded as the script reads it: one argument a scope
    owner: tuple = ()  # ("k", ApiKey id) or ("o", Organisation id): whose spend seeds the budget counter

    @classmethod
    def build(cls, prefix: str, label: str, limits: Limits, owner: tuple = ()) -> "Scope":
        r, t = limits.requests, limits.tokens
        numbers = (r.count if r else 0, r.seconds * 1000 if r else 0, t.count if t else 0, t.seconds * 1000 if t else 0,
                   limits.concurrent, limits.tokens_per_day, limits.tokens_per_month,
                   0 if limits.budget is None else limits.budget + 1)
        return cls(prefix, label, limits, numbers, (" ".join((prefix, *map(str, numbers))).encode(),), owner)

    @property
    def budget_key(self) -> str:
        return self.prefix + ":$"


@dataclass(slots=True)
class Decision:
    """An admission's outcome. Admitted: `at` (ms, the limiter's clock, for settling) and the most used
    request and token limits (limit, remaining, reset ms; limit 0: none applied). Refused: which scope
    (index), which limit (`kind`: requests, tokens, concurrent, day, month), its size and when to retry
    (ms; NEVER or CALENDAR)."""

    admitted: bool
    at: int = 0
    requests: tuple = (0, 0, 0)
    tokens: tuple = (0, 0, 0)
    scope: int = 0
    kind: str = ""
    limit: int = 0
    retry_ms: int = 0
    leased: bool = False  # the first target's credential lease was taken too


# One script takes a process's whole batch: the settles waiting, then the requests waiting for
# admission (one round trip and one script run for many requests under load; a request alone is a
# batch of one). Within it, each settle and each admission is applied in turn, atomically; settling
# first lets a lease given back serve an admission of the same batch.
#
# ARGV: day ("20261129"), lease (ms), the number of settles, then
#   per settle: member, token delta (used - reserved), cost delta (micro-roubles), admitted at (ms), its day,
#     the credential lease set it was granted a place in ('' none), n, n × scope ("key prefix, limits spec");
#   per admission: member, tokens, cost (micro-roubles), a credential lease set ('' none) and its limit,
#     n, n × scope.
# An admitted request also takes a place in the lease set of its first target's credential when one is free
# (apps/common/leases.py: the adapter then uses it instead of asking Redis again); a full one is no refusal
# (the adapter waits for a place, or the router falls back).
# Returns the time (ms), then per admission: admitted (1/0), refused scope (1-based), refused limit,
# retry ms, its size, and the requests and tokens limits with the lowest remaining fraction
# (limit, remaining, reset ms; 0 0 0 when none).
# Keys are derived from the prefixes: XRouter runs on one Redis (not a cluster).
LIMITS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local day, month, LEASE = ARGV[1], string.sub(ARGV[1], 1, 6), tonumber(ARGV[2])
local N = %(buckets)d
local out = {now}
local specs = {}
local function spec(text)  -- "prefix n1 n2 …", parsed once per batch (a batch's requests mostly share their scopes)
  local s = specs[text]
  if not s then
    local space = string.find(text, ' ', 1, true)
    s = {p = string.sub(text, 1, space - 1)}
    for num in string.gmatch(string.sub(text, space + 1), '%%d+') do s[#s + 1] = tonumber(num) end
    specs[text] = s
  end
  return s, s.p
end

-- The window's buckets, oldest first (bucket b counts until (b + N + 1) * width).
local function window(key, quota, period, cost)
  local width = math.max(1, math.floor(period / N))
  local cur = math.floor(now / width)
  local fields = {}
  for b = cur - N, cur do fields[#fields + 1] = b end
  local values = redis.call('HMGET', key, unpack(fields))
  local sum, first = 0, nil
  for j = 1, #values do
    local v = tonumber(values[j]) or 0
    values[j] = v
    if v > 0 then
      sum = sum + v
      first = first or j
    end
  end
  local over = sum + cost - quota
  if over > 0 then
    if cost > quota then return nil, -1, sum end
    local freed = 0
    for j = 1, #values do
      freed = freed + values[j]
      if freed >= over then return nil, (cur + j) * width - now, sum end
    end
    return nil, period, sum
  end
  return {key, cur, cost, period + 2 * width}, (cur + (first or N + 1)) * width - now, sum
end

local a = 4
for _ = 1, tonumber(ARGV[3]) do
  local member, delta, cdelta, at, sday, lkey, n = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]),
    tonumber(ARGV[a + 3]), ARGV[a + 4], ARGV[a + 5], tonumber(ARGV[a + 6])
  local smonth = string.sub(sday, 1, 6)
  a = a + 7
  if lkey ~= '' then redis.call('ZREM', lkey, member) end
  for i = 1, n do
    local s, p = spec(ARGV[a])
    a = a + 1
    -- A counter that was gone (its window passed, its day ended) is not brought back: a result equal
    -- to the delta means the increment created it, and it is removed again.
    if delta ~= 0 then
      if s[4] > 0 then
        local k, b = p .. ':t', math.floor(at / math.max(1, math.floor(s[4] / N)))
        if redis.call('HINCRBY', k, b, delta) == delta then redis.call('HDEL', k, b) end
      end
      if s[6] > 0 and redis.call('INCRBY', p .. ':d:' .. sday, delta) == delta then redis.call('DEL', p .. ':d:' .. sday) end
      if s[7] > 0 and redis.call('INCRBY', p .. ':m:' .. smonth, delta) == delta then redis.call('DEL', p .. ':m:' .. smonth) end
    end
    -- A budget counter only moves while it exists (a missing one is seeded from the database): one the
    -- increment created is removed again, as above.
    if s[8] > 0 and cdelta ~= 0 and redis.call('INCRBY', p .. ':$:' .. smonth, cdelta) == cdelta then
      redis.call('DEL', p .. ':$:' .. smonth)
    end
    if s[5] > 0 then redis.call('ZREM', p .. ':c', member) end
  end
end

while a <= #ARGV do
  local member, cost_t, cost_m, lkey, llimit, n = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), ARGV[a + 3],
    tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5])
  a = a + 6
  local writes, best, refused = {}, {2, 0, 0, 0, 2, 0, 0, 0}, nil
  local function keep(slot, quota, remaining, reset)
    local f = remaining / math.max(quota, 1)
    if f < best[slot] then
      best[slot], best[slot + 1], best[slot + 2], best[slot + 3] = f, quota, remaining, reset
    end
  end
  local function refuse(i, kind, retry, quota)
    if not refused then refused = {i, kind, retry, quota} end
  end
  for i = 1, n do
    local s, p = spec(ARGV[a])
    a = a + 1
    if s[2] > 0 then
      local w, reset, sum = window(p .. ':r', s[1], s[2], 1)
      if w then
        writes[#writes + 1] = w
        keep(1, s[1], s[1] - sum - 1, reset)
      else
        refuse(i, 'requests', reset, s[1])
        keep(1, s[1], math.max(0, s[1] - sum), reset < 0 and s[2] or reset)
      end
    end
    if s[4] > 0 then
      local w, reset, sum = window(p .. ':t', s[3], s[4], cost_t)
      if w then
        if cost_t > 0 then writes[#writes + 1] = w end
        keep(5, s[3], s[3] - sum - cost_t, reset)
      else
        refuse(i, 'tokens', reset, s[3])
        keep(5, s[3], math.max(0, s[3] - sum), reset < 0 and s[4] or reset)
      end
    end
    if s[5] > 0 then
      local k = p .. ':c'
      -- Leases still running; the expired ones (a killed worker's) are swept when they would matter.
      if redis.call('ZCOUNT', k, now, '+inf') >= s[5] then
        redis.call('ZREMRANGEBYSCORE', k, '-inf', now)
        refuse(i, 'concurrent', 1000, s[5])
      end
      writes[#writes + 1] = {1, k}
    end
    if s[6] > 0 then
      local k = p .. ':d:' .. day
      if tonumber(redis.call('GET', k) or '0') + cost_t > s[6] then refuse(i, 'day', -2, s[6]) end
      writes[#writes + 1] = {2, k, cost_t, %(day_ttl)d}
    end
    if s[7] > 0 then
      local k = p .. ':m:' .. month
      if tonumber(redis.call('GET', k) or '0') + cost_t > s[7] then refuse(i, 'month', -2, s[7]) end
      writes[#writes + 1] = {2, k, cost_t, %(month_ttl)d}
    end
    if s[8] > 0 then
      local k, budget = p .. ':$:' .. month, s[8] - 1
      local spent = redis.call('GET', k)
      if not spent then
        refuse(i, 'seed', 0, budget)
      elseif tonumber(spent) >= budget or tonumber(spent) + cost_m > budget then
        refuse(i, 'budget', -2, budget)
      end
      writes[#writes + 1] = {3, k, cost_m}  -- it exists (GET above); its seed set its expiry
    end
  end
  if refused then
    out[#out + 1], out[#out + 2], out[#out + 3], out[#out + 4], out[#out + 5] = 0, refused[1], refused[2], refused[3], refused[4]
  else
    for _, w in ipairs(writes) do
      if w[1] == 1 then
        redis.call('ZADD', w[2], now + LEASE, member)
        redis.call('PEXPIRE', w[2], LEASE + 1000)
      elseif w[1] == 2 then  -- a day's or month's tokens: the expiry is set when the increment creates it
        if w[3] > 0 and redis.call('INCRBY', w[2], w[3]) == w[3] then redis.call('EXPIRE', w[2], w[4]) end
      elseif w[1] == 3 then
        if w[3] > 0 then redis.call('INCRBY', w[2], w[3]) end
      elseif redis.call('HINCRBY', w[1], w[2], w[3]) == w[3] then
        -- A bucket's first write: keep the window alive, and now and then drop buckets that left it.
        redis.call('PEXPIRE', w[1], w[4])
        if redis.call('HLEN', w[1]) > 2 * N + 2 then
          for _, f in ipairs(redis.call('HKEYS', w[1])) do
            if tonumber(f) < w[2] - N then redis.call('HDEL', w[1], f) end
          end
        end
      end
    end
    out[#out + 1], out[#out + 2], out[#out + 3], out[#out + 4], out[#out + 5] = 1, 0, '', 0, 0
  end
  for j = 2, 4 do out[#out + 1] = best[j] end
  for j = 6, 8 do out[#out + 1] = best[j] end
  local leased = 0
  if lkey ~= '' and not refused then
    redis.call('ZREMRANGEBYSCORE', lkey, '-inf', now)
    if redis.call('ZCARD', lkey) < llimit then
      redis.call('ZADD', lkey, now + LEASE, member)
      redis.call('PEXPIRE', lkey, LEASE + 1000)
      leased = 1
    end
  end
  out[#out + 1] = leased
end
return out
"""

_CONSTANTS = {"buckets": WINDOW_BUCKETS, "day_ttl": DAY_TTL, "month_ttl": MONTH_TTL}
LIMITS = LIMITS % _CONSTANTS


REPLY_SIZE = 12  # values per admission in the script's reply


def parse_replies(reply) -> list[Decision]:
    """The script's reply as one Decision per admission of the batch, in order."""
    at, decisions = reply[0], []
    for i in range(1, len(reply), REPLY_SIZE):
        r = reply[i:i + REPLY_SIZE]
        requests, tokens = (r[5], r[6], r[7]), (r[8], r[9], r[10])
        if r[0] == 1:
            decisions.append(Decision(True, at=at, requests=requests, tokens=tokens, leased=r[11] == 1))
        else:
            kind = r[2].decode() if isinstance(r[2], bytes) else r[2]
            decisions.append(Decision(False, scope=r[1] - 1, kind=kind, retry_ms=r[3], limit=r[4], requests=requests,
                                      tokens=tokens))
    return decisions


def admit_args(scopes, member: str, tokens: int, cost: int = 0, lease: tuple = ("", 0)) -> list:
    """One admission's part of the script's ARGV (cost: micro-roubles; lease: a credential's lease set and limit)."""
    args = [member, tokens, cost, *lease, len(scopes)]
    for scope in scopes:
        args += scope.args
    return args


def settle_args(scopes, member: str, delta: int, at: int, day: str, cost_delta: int = 0, lease: str = "") -> list:
    """One settle's part of the script's ARGV."""
    args = [member, delta, cost_delta, at, day, lease, len(scopes)]
    for scope in scopes:
        args += scope.args
    return args


class LocalLimiter:
    """The script's semantics in one process: without REDIS_URL, and as the fail-open fallback while
    Redis is unreachable (then each limit is divided by `divisor`, the expected number of replicas)."""

    def __init__(self, divisor: int = 1, clock=time.time):
        self.divisor = max(1, divisor)
        self.clock = clock
        self.windows: dict[str, dict[int, int]] = {}
        self.leases: dict[str, dict[str, int]] = {}
        self.counters: dict[str, tuple[str, int]] = {}  # prefix:d / :m / :$ → (day or month, tokens or micro-roubles)

    def _share(self, quota: int) -> int:
        return quota if self.divisor == 1 else max(1, quota // self.divisor)

    def _now(self) -> int:
        return int(self.clock() * 1000)

    def _window(self, key, quota, period, cost, now):
        width = max(1, period // WINDOW_BUCKETS)
        cur = now // width
        buckets = self.windows.setdefault(key, {})
        for b in [b for b in buckets if b < cur - WINDOW_BUCKETS]:
            del buckets[b]
        total = sum(buckets.values())
        live = sorted((b, v) for b, v in buckets.items() if v > 0)
        over = total + cost - quota
        if over > 0:
            if cost > quota:
                return None, NEVER, total
            freed = 0
            for b, v in live:
                freed += v
                if freed >= over:
                    return None, (b + WINDOW_BUCKETS + 1) * width - now, total
            return None, period, total
        first = live[0][0] if live else cur
        return (buckets, cur, cost), (first + WINDOW_BUCKETS + 1) * width - now, total

    def seed(self, key: str, month: str, spent: int) -> None:
        """A budget counter's month-to-date spend (kept if another seed came first, as SET NX)."""
        current = self.counters.get(key)
        if current is None or current[0] != month:
            self.counters[key] = (month, -(-spent // self.divisor))

    def admit(self, scopes, member: str, tokens: int, day: str, lease_ms: int = LEASE_MS, cost: int = 0) -> Decision:
        now, month, money = self._now(), day[:6], cost
        writes, best, refused = [], {"r": (2.0, 0, 0, 0), "t": (2.0, 0, 0, 0)}, None
        for i, scope in enumerate(scopes):
            rq, rp, tq, tp, conc, dq, mq, bq = scope.numbers
            for slot, quota, period, cost, kind in (("r", rq, rp, 1, "requests"), ("t", tq, tp, tokens, "tokens")):
                if not period:
                    continue
                quota = self._share(quota)
                window, reset, total = self._window(f"{scope.prefix}:{slot}", quota, period, cost, now)
                if window is not None:
                    if cost:
                        writes.append(window)
                    remaining = quota - total - cost
                else:
                    refused = refused or (i, kind, reset, quota)
                    remaining, reset = max(0, quota - total), period if reset < 0 else reset
                if remaining / max(quota, 1) < best[slot][0]:
                    best[slot] = (remaining / max(quota, 1), quota, remaining, reset)
            if conc:
                conc = self._share(conc)
                held = self.leases.setdefault(f"{scope.prefix}:c", {})
                for gone in [m for m, until in held.items() if until <= now]:
                    del held[gone]
                if len(held) >= conc:
                    refused = refused or (i, "concurrent", 1000, conc)
                writes.append((held,))
            for quota, suffix, period, kind in ((dq, "d", day, "day"), (mq, "m", month, "month")):
                if quota:
                    quota = self._share(quota)
                    key = f"{scope.prefix}:{suffix}"
                    current = self.counters.get(key)
                    used = current[1] if current is not None and current[0] == period else 0
                    if used + tokens > quota:
                        refused = refused or (i, kind, CALENDAR, quota)
                    writes.append((key, period, used, tokens))
            if bq:
                quota = self._share(bq - 1) if bq > 1 else 0
                current = self.counters.get(scope.budget_key)
                if current is None or current[0] != month:
                    refused = refused or (i, SEED, 0, quota)
                else:
                    if current[1] >= quota or current[1] + money > quota:
                        refused = refused or (i, "budget", CALENDAR, quota)
                    writes.append((scope.budget_key, month, current[1], money))
        if refused is not None:
            i, kind, retry, quota = refused
            return Decision(False, scope=i, kind=kind, retry_ms=retry, limit=quota, requests=best["r"][1:],
                            tokens=best["t"][1:])
        for write in writes:
            if len(write) == 1:
                write[0][member] = now + lease_ms
            elif isinstance(write[0], str):
                self.counters[write[0]] = (write[1], write[2] + write[3])
            else:
                buckets, bucket, taken = write
                buckets[bucket] = buckets.get(bucket, 0) + taken
        return Decision(True, at=now, requests=best["r"][1:], tokens=best["t"][1:])

    def settle(self, scopes, member: str, delta: int, at: int, day: str, cost_delta: int = 0) -> None:
        month = day[:6]
        for scope in scopes:
            rq, rp, tq, tp, conc, dq, mq, bq = scope.numbers
            if delta and tp:
                buckets = self.windows.get(f"{scope.prefix}:t")
                bucket = at // max(1, tp // WINDOW_BUCKETS)
                if buckets is not None and bucket in buckets:
                    buckets[bucket] += delta
            if delta:
                for quota, suffix, period in ((dq, "d", day), (mq, "m", month)):
                    key = f"{scope.prefix}:{suffix}"
                    current = self.counters.get(key)
                    if quota and current is not None and current[0] == period:
                        self.counters[key] = (period, current[1] + delta)
            if bq and cost_delta:
                current = self.counters.get(scope.budget_key)
                if current is not None and current[0] == month:
                    self.counters[scope.budget_key] = (month, current[1] + cost_delta)
            if conc:
                self.leases.get(f"{scope.prefix}:c", {}).pop(member, None)

    def renew(self, leases: list[tuple[str, str]], lease_ms: int = LEASE_MS) -> None:
        """leases: (concurrency key, member) pairs still running."""
        until = self._now() + lease_ms
        for key, member in leases:
            held = self.leases.get(key)
            if held is not None and member in held:
                held[member] = until
