"""The request-time state on Redis: the cluster profile's twin of ``realtime_state.RealtimeState``
(same methods, same rules), beside Feast's rows in the online store's Redis.

Keys, under ``<project>:rt:`` (a single Redis: the scripts touch keys they compute, which Redis
Cluster would refuse):

* ``tx`` (hash): transaction id -> ``customer|terminal|tx_us|amount``, the one record of each
  event (what makes a write idempotent and a correction possible);
* ``card:<customer>`` (sorted set): member ``<id>|<amount>``, score the time (epoch µs; exact in
  a double up to 2**53 µs, the year 2255);
* ``terminal:<terminal>`` (sorted set): member ``<id>``, score the time;
* ``time`` (sorted set): every event id by time, for the batch's expiry;
* ``clock`` (string): the data time (newest event time held, epoch µs).

Reads are two ``ZRANGEBYSCORE`` per row with exclusive bounds (``T - w < t < T``, as the SQLite
state's query), all in one pipeline (``read_commands`` lets the serving reader put them in its
own pipeline beside Feast's rows: one round trip for the whole feature read). Writes are Lua
scripts, each atomic on the server: ``record`` adds the events it has not seen, prunes each new
event's card of what expired, and moves the clock forward; ``reconcile`` upserts a landed batch
(the batch's values win) and then expires everything older than the retention before the data
time. Several replicas writing at once therefore keep every transaction once, as on SQLite.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from evergreen.features.realtime import (
    CARD_FEATURES,
    LONGEST_S,
    RETENTION_S,
    TERMINAL_FEATURES,
    TERMINAL_WINDOWS,
    US,
    card_features,
    from_micros,
    micros,
    terminal_features,
)
from evergreen.features.realtime_state import as_columns

_TERMINAL_LONGEST_S = max(TERMINAL_WINDOWS.values())
_CHUNK = 2_000  # events per script call of a batch (a script blocks the server while it runs)
_TIMEOUT_S = 2.0  # a Redis that does not answer makes the request fail, never hang

# Drop the events of one card older than a cutoff: from the card, their terminal, the time
# index and the records. Shared by both write scripts.
_PRUNE_LUA = """
local function drop(prefix, id)
  local record = redis.call('HGET', prefix .. 'tx', id)
  if not record then return end
  local c, t, us, amount = string.match(record, '([^|]+)|([^|]+)|([^|]+)|(.+)')
  redis.call('ZREM', prefix .. 'card:' .. c, id .. '|' .. amount)
  redis.call('ZREM', prefix .. 'terminal:' .. t, id)
  redis.call('ZREM', prefix .. 'time', id)
  redis.call('HDEL', prefix .. 'tx', id)
end
local function prune_card(prefix, c, cutoff)
  local old = redis.call('ZRANGEBYSCORE', prefix .. 'card:' .. c, '-inf', cutoff)
  for _, member in ipairs(old) do
    drop(prefix, string.match(member, '^([^|]+)'))
  end
end
local function add(prefix, id, c, t, us, amount)
  redis.call('HSET', prefix .. 'tx', id, c .. '|' .. t .. '|' .. us .. '|' .. amount)
  redis.call('ZADD', prefix .. 'card:' .. c, us, id .. '|' .. amount)
  redis.call('ZADD', prefix .. 'terminal:' .. t, us, id)
  redis.call('ZADD', prefix .. 'time', us, id)
end
local function advance(prefix, us)
  local clock = tonumber(redis.call('GET', prefix .. 'clock'))
  if not clock or tonumber(us) > clock then redis.call('SET', prefix .. 'clock', us) end
end
"""

# ARGV: prefix, retention µs, then 5 values per event (id, customer, terminal, µs, amount).
# New events only; each new one prunes its card. Returns the number added.
_RECORD_LUA = (
    _PRUNE_LUA
    + """
local prefix, retention = ARGV[1], tonumber(ARGV[2])
local added, newest = 0, nil
for i = 3, #ARGV, 5 do
  local id, c, t, us, amount = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], ARGV[i+4]
  if redis.call('HEXISTS', prefix .. 'tx', id) == 0 then
    add(prefix, id, c, t, us, amount)
    prune_card(prefix, c, string.format('%.0f', tonumber(us) - retention))
    added = added + 1
  end
  if not newest or tonumber(us) > tonumber(newest) then newest = us end
end
if newest then advance(prefix, newest) end
return added
"""
)

# ARGV: prefix, then 5 values per event. A held event whose record differs takes the batch's
# values. Returns the number written (added or corrected).
_UPSERT_LUA = (
    _PRUNE_LUA
    + """
local prefix = ARGV[1]
local written = 0
for i = 2, #ARGV, 5 do
  local id, c, t, us, amount = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], ARGV[i+4]
  local record = redis.call('HGET', prefix .. 'tx', id)
  local wanted = c .. '|' .. t .. '|' .. us .. '|' .. amount
  if record ~= wanted then
    if record then drop(prefix, id) end
    add(prefix, id, c, t, us, amount)
    written = written + 1
  end
end
return written
"""
)

# ARGV: prefix, horizon µs (inclusive), limit. Drops up to limit events at or before the
# horizon; returns how many (called until 0).
_EXPIRE_LUA = (
    _PRUNE_LUA
    + """
local prefix = ARGV[1]
local ids = redis.call('ZRANGEBYSCORE', prefix .. 'time', '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])
for _, id in ipairs(ids) do drop(prefix, id) end
return #ids
"""
)


class StoreUnavailable(ConnectionError):
    """The online store's Redis did not answer (down, restarting, unreachable): nothing was
    read or written; serving turns it into a 503 with this reason (``ServingRuntime``)."""


@contextlib.contextmanager
def unavailable_as(where: str) -> Iterator[None]:
    """Redis's connection and timeout errors as ``StoreUnavailable`` naming ``where``."""
    import redis

    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as error:
        raise StoreUnavailable(f"redis {where}: {error}") from error


def parse_connection_string(connection: str) -> tuple[str, int, dict[str, Any]]:
    """Host, port and options of Feast's Redis ``connection_string`` (``host:port,db=1,
    password=...,ssl=true``), read as Feast's ``RedisOnlineStore._parse_connection_string``
    reads it (options JSON-decoded when they are JSON). Not Feast's own: importing Feast costs
    seconds, which a process that writes the state without Feast (a test's writer) need not pay."""
    nodes = [part for part in connection.split(",") if "=" not in part]
    if not nodes:
        raise ValueError(f"no host:port in Redis connection string {connection!r}")
    host, _, port = nodes[0].partition(":")
    options: dict[str, Any] = {}
    for part in connection.split(","):
        if "=" in part:
            key, value = part.split("=", 1)
            try:
                options[key] = json.loads(value)
            except json.JSONDecodeError:
                options[key] = value
    return host, int(port or 6379), options


def _amount(value: float) -> str:
    """An amount as the state stores it: ``repr`` (the shortest text that reads back equal)."""
    return repr(float(value))


class RedisRealtimeState:
    """The request-time state in Redis (module docstring). ``conn`` arguments are accepted for
    the SQLite state's signature and ignored: the client's pool serves every thread."""

    def __init__(self, client: Any, project: str) -> None:
        self.client, self.project = client, project
        self.prefix = f"{project}:rt:"
        kwargs = client.connection_pool.connection_kwargs
        self.where = f"{kwargs.get('host')}:{kwargs.get('port')}"
        self._record = client.register_script(_RECORD_LUA)
        self._upsert = client.register_script(_UPSERT_LUA)
        self._expire = client.register_script(_EXPIRE_LUA)

    @classmethod
    def from_connection_string(cls, connection: str, project: str) -> RedisRealtimeState:
        """The state on the Redis of Feast's ``connection_string`` (``host:port,db=N,...``),
        with timeouts: a Redis that went away fails a request, never hangs it."""
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        host, port, options = parse_connection_string(connection)
        client = redis.Redis(
            host=host,
            port=port,
            socket_timeout=_TIMEOUT_S,
            socket_connect_timeout=_TIMEOUT_S,
            # One reconnect at once (a connection left over from before a restart), never
            # redis-py's default backoff: 3 retries 1, 2, 4 s apart held a request (and the
            # replica's /readyz) 7 s on a stopped Redis.
            retry=Retry(NoBackoff(), 1),
            **options,
        )
        return cls(client, project)

    def connect(self) -> Any:
        return self.client

    def close(self) -> None:
        self.client.close()

    # ------------------------------------------------------------------------- reads

    def data_time(self, conn: Any = None) -> dt.datetime | None:
        """The newest event time the state holds (None when empty)."""
        with unavailable_as(self.where):
            value = self.client.get(self.prefix + "clock")
        return None if value is None else from_micros(int(value))

    def read_commands(self, pipe: Any, rows: dict[str, list[Any]], at: dt.datetime) -> int:
        """Queue the reads of ``rows`` at ``at`` on ``pipe``; returns how many replies they
        take (``features`` turns those replies into the features)."""
        at_us = micros(at)
        card_low = f"({at_us - LONGEST_S * US}"
        terminal_low = f"({at_us - _TERMINAL_LONGEST_S * US}"
        high = f"({at_us}"
        for customer, terminal in zip(rows["customer_id"], rows["terminal_id"], strict=True):
            pipe.zrangebyscore(f"{self.prefix}card:{customer}", card_low, high, withscores=True)
            pipe.zrangebyscore(
                f"{self.prefix}terminal:{terminal}", terminal_low, high, withscores=True
            )
        return 2 * len(rows["customer_id"])

    def features(
        self, replies: Sequence[Any], rows: dict[str, list[Any]], at: dt.datetime
    ) -> dict[str, list[Any]]:
        """The request-time features of ``rows`` from the replies of ``read_commands``."""
        at_us = micros(at)
        card_rows, terminal_rows = [], []
        for i, amount in enumerate(rows["amount"]):
            events = [(int(t), float(m.split(b"|", 1)[1])) for m, t in replies[2 * i]]
            card_rows.append(card_features(events, at_us, amount))
            times = [int(t) for _, t in replies[2 * i + 1]]
            terminal_rows.append(terminal_features(times, at_us))
        values = as_columns(CARD_FEATURES, card_rows)
        values.update(as_columns(TERMINAL_FEATURES, terminal_rows))
        return values

    def read(self, conn: Any, rows: dict[str, list[Any]], at: dt.datetime) -> dict[str, list]:
        """The request-time features of ``rows`` at ``at``, in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        self.read_commands(pipe, rows, at)
        with unavailable_as(self.where):
            replies = pipe.execute()
        return self.features(replies, rows, at)

    def held(self, transaction_ids: Iterable[int]) -> dict[int, int]:
        """How many records the state holds for each of these transaction ids (0 or 1)."""
        ids = list(transaction_ids)
        if not ids:
            return {}
        found = self.client.hmget(self.prefix + "tx", [str(i) for i in ids])
        return {i: int(value is not None) for i, value in zip(ids, found, strict=True)}

    # ------------------------------------------------------------------------- writes

    def record(
        self,
        events: Sequence[tuple[int, int, int, dt.datetime, float]],
        conn: Any = None,
        data_time: dt.datetime | None = None,
    ) -> None:
        """Add served transactions ``(transaction_id, customer_id, terminal_id, tx_datetime,
        amount)`` in one script call: each at most once, its card's expired events dropped,
        the data time moved forward."""
        if not events:
            return
        argv: list[Any] = [self.prefix, RETENTION_S * US]
        for tx, customer, terminal, ts, amount in events:
            argv += [int(tx), int(customer), int(terminal), micros(ts), _amount(amount)]
        with unavailable_as(self.where):
            self._record(args=argv)

    def reconcile(self, columns: dict[str, Sequence]) -> dict[str, int]:
        """Add a landed batch (column lists ``transaction_id, customer_id, terminal_id, tx_us,
        amount``) as ``RealtimeState.reconcile`` does: unseen ones added, differing ones
        corrected, too old ones skipped, then everything older than the retention before the
        data time dropped. Returns the same counts."""
        rows = sorted(
            zip(
                columns["transaction_id"],
                columns["customer_id"],
                columns["terminal_id"],
                columns["tx_us"],
                columns["amount"],
                strict=True,
            )
        )
        newest = max((r[3] for r in rows), default=None)
        if newest is not None:
            self.client.eval(
                "local c = tonumber(redis.call('GET', KEYS[1])) "
                "if not c or tonumber(ARGV[1]) > c then redis.call('SET', KEYS[1], ARGV[1]) end",
                1,
                self.prefix + "clock",
                int(newest),
            )
        clock = self.data_time()
        horizon = micros(clock) - RETENTION_S * US if clock else None
        kept = [r for r in rows if horizon is None or r[3] > horizon]
        written = 0
        for start in range(0, len(kept), _CHUNK):
            argv: list[Any] = [self.prefix]
            for tx, customer, terminal, us, amount in kept[start : start + _CHUNK]:
                argv += [int(tx), int(customer), int(terminal), int(us), _amount(amount)]
            written += int(self._upsert(args=argv))
        dropped = 0
        while horizon is not None:
            n = int(self._expire(args=[self.prefix, horizon, _CHUNK]))
            dropped += n
            if n == 0:
                break
        return {
            "rows": len(rows),
            "written": written,
            "already_held": len(kept) - written,
            "too_old": len(rows) - len(kept),
            "expired_dropped": dropped,
        }
