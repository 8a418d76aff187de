"""Read Feast's Redis online store directly: the keys, hash fields and value encoding Feast uses.

Feast's Redis store (``feast/infra/online_stores/redis.py``) keeps one hash per entity key:

* key: ``serialize_entity_key(entity_key, version) + project`` where version 3 is
  ``<I n_keys`` then per join key ``<I STRING, <I len, name`` then per value ``<I type, <I len, bytes``
  (join keys sorted by name; a string as UTF-8, Int32 as ``<i``, Int64 as ``<q``); version 2 drops
  the count and the key lengths;
* fields: ``murmur3_32("<view>:<feature>")`` as 4 little-endian bytes, plus ``_ts:<view>``;
* values: a serialized ``feast.types.Value`` protobuf, one scalar field set.

The worker and the benchmark's raw floor both use :class:`RedisOnlineReader`: keys computed once per
entity and decode values with :func:`decode_value`, in one pipelined round trip per batch, with
the feature views resolved once per model version. Tests check keys, values and whole reads
against Feast's own API, so a change in Feast's layout fails the suite rather than the scores.
"""

from __future__ import annotations

import re
import ssl
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import orjson
import redis
import redis.asyncio

from driftline.errors import FeatureStoreAccessError
from driftline.features import OnlineRows
from driftline.registry import EntityType, ModelMetadata
from driftline.settings import RedisSettings, mask_url
from feature_repo.online import bounded_read

#: feast ValueType codes of join-key types (feast/value_type.py) and their packing in entity keys.
_VALUE_TYPE_STRING = 2
_KEY_TYPES: dict[str, tuple[int, str]] = {"int32": (3, "<i"), "int64": (4, "<q")}
#: Entity key serialization versions this reader writes (Feast 0.67 warns below 3; 2 lacks the counts).
SUPPORTED_KEY_VERSIONS = (2, 3)


def _key_value(dtype: EntityType, value: object) -> tuple[int, bytes]:
    if dtype == "string":
        return _VALUE_TYPE_STRING, str(value).encode("utf8")
    code, fmt = _KEY_TYPES[dtype]
    return code, struct.pack(fmt, value)


def serialize_entity_key(
    join_keys: Mapping[str, object], types: Mapping[str, EntityType] | None = None, version: int = 3
) -> bytes:
    """Feast's ``serialize_entity_key`` (versions 2 and 3) for String, Int32 and Int64 join keys.

    ``types`` maps a join key to its type (default string). Join keys are sorted by name, as Feast
    sorts (key, value) pairs and keys are distinct.
    """
    pairs = sorted(join_keys.items())
    out = [struct.pack("<I", len(pairs))] if version > 2 else []
    for name, _ in pairs:
        encoded = name.encode("utf8")
        out.append(struct.pack("<I", _VALUE_TYPE_STRING))
        if version > 2:
            out.append(struct.pack("<I", len(encoded)))
        out.append(encoded)
    for name, value in pairs:
        code, encoded = _key_value((types or {}).get(name, "string"), value)
        out += [struct.pack("<II", code, len(encoded)), encoded]
    return b"".join(out)


def redis_key(
    project: str, join_keys: Mapping[str, object], types: Mapping[str, EntityType] | None = None, version: int = 3
) -> bytes:
    """The Redis key of an entity's hash: serialized entity key, then the project name."""
    return serialize_entity_key(join_keys, types, version) + project.encode("utf8")


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _signed32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def decode_value(raw: bytes | None) -> object:
    """Decode a serialized scalar ``feast.types.Value`` into the Python value Feast's ``to_dict`` gives.

    None or an empty message (Feast's null) is None. List, map and set values are refused: the
    floor serves scalar features only, and saying so beats returning a wrong value.
    """
    if not raw:
        return None
    tag, pos = _varint(raw, 0)
    number, wire = tag >> 3, tag & 7
    if wire == 0:  # varint: int32 (3), int64 (4), bool (7), unix timestamp (8), null (19)
        value, _ = _varint(raw, pos)
        if number == 3:
            return _signed32(value)
        if number in (4, 8):
            return _signed64(value)
        if number == 7:
            return bool(value)
        if number == 19:
            return None
    elif wire == 1 and number == 5:  # double
        return float(struct.unpack_from("<d", raw, pos)[0])
    elif wire == 5 and number == 6:  # float
        return float(struct.unpack_from("<f", raw, pos)[0])
    elif wire == 2:
        length, pos = _varint(raw, pos)
        chunk = raw[pos : pos + length]
        if number == 1:  # bytes
            return bytes(chunk)
        if number in (2, 32, 36, 37, 44):  # string, json, uuid, time uuid, decimal: all strings
            return chunk.decode("utf8")
    raise ValueError(f"unsupported feast Value field {number} (wire type {wire})")


@dataclass(frozen=True, slots=True)
class ViewLayout:
    """One feature view's hash: which event fields make its key and which fields to read."""

    name: str
    join_keys: dict[str, str]  # join key -> event field
    key_types: dict[str, EntityType]  # join key -> Feast value type
    columns: list[str]  # model column names (FeatureSpec.name), in the order of ``fields``
    fields: list[bytes]  # murmur3 hash field per column


@dataclass(frozen=True, slots=True)
class RedisLayout:
    """Where a model's feast features sit in Feast's Redis online store."""

    project: str
    views: list[ViewLayout]
    key_version: int = 3  # the repo's entity_key_serialization_version

    def to_json(self) -> bytes:
        """Serialize (hash fields as hex) for a child process."""
        return orjson.dumps(
            {
                "project": self.project,
                "key_version": self.key_version,
                "views": [
                    {"name": v.name, "join_keys": v.join_keys, "key_types": v.key_types, "columns": v.columns,
                     "fields": [f.hex() for f in v.fields]}
                    for v in self.views
                ],
            }
        )

    @classmethod
    def from_json(cls, data: bytes) -> RedisLayout:
        """Inverse of :meth:`to_json`."""
        raw: dict[str, Any] = orjson.loads(data)
        return cls(
            project=raw["project"],
            key_version=raw.get("key_version", 3),
            views=[
                ViewLayout(name=v["name"], join_keys=dict(v["join_keys"]), key_types=dict(v["key_types"]),
                           columns=list(v["columns"]),
                           fields=[bytes.fromhex(f) for f in v["fields"]])
                for v in raw["views"]
            ],
        )

    def entity_row(self, event: Mapping[str, Any]) -> dict[str, object]:
        """The join keys of every view, read from an event's fields."""
        return {join_key: event[field] for view in self.views for join_key, field in view.join_keys.items()}

    @classmethod
    def read(cls, path: Path) -> RedisLayout:
        """Load a layout written by :meth:`to_json`."""
        return cls.from_json(path.read_bytes())


#: Feast dtypes (``str(field.dtype)``) of the scalar values :func:`decode_value` reads.
_DECODED_DTYPES = {"String", "Int32", "Int64", "Float32", "Float64", "Bool", "Bytes", "UnixTimestamp"}


def fast_read_problems(store: Any, metadata: ModelMetadata) -> list[str]:
    """Why this reader cannot serve ``metadata``'s feast features (empty: it can).

    On-demand views are computed by Feast at read time, list and map values are not decoded, and only
    the entity key serialization versions Feast writes today are built; the worker then uses Feast's
    own reader for the model instead.
    """
    problems: list[str] = []
    version = getattr(store.config, "entity_key_serialization_version", 3)
    if version not in SUPPORTED_KEY_VERSIONS:
        problems.append(f"entity_key_serialization_version {version} is not one of {SUPPORTED_KEY_VERSIONS}")
    odfvs = {view.name for view in store.list_on_demand_feature_views()}
    for view_name in metadata.feature_views:
        if view_name in odfvs:
            problems.append(f"{view_name} is an on-demand feature view (Feast computes it at read time)")
            continue
        view = store.get_feature_view(view_name)
        for spec in metadata.features:
            if spec.source != "feast" or spec.feature_view != view_name or not spec.ref:
                continue
            feature = spec.ref.split(":", 1)[1]
            dtype = next((str(f.dtype) for f in view.features if f.name == feature), None)
            if dtype not in _DECODED_DTYPES:
                problems.append(f"{spec.ref} has type {dtype}, which the fast reader does not decode")
    return problems


def layout_from_store(store: Any, metadata: ModelMetadata) -> RedisLayout:
    """Work out the layout of ``metadata``'s feast features from a Feast ``FeatureStore``.

    Call only when :func:`fast_read_problems` found none.
    """
    from feast.infra.online_stores.helpers import _mmh3, compute_versioned_name

    config = store.config
    versioning = bool(getattr(config.registry, "enable_online_feature_view_versioning", False))
    entity_of_join_key = {e.join_key: e for e in metadata.entities}
    views: list[ViewLayout] = []
    for view_name in metadata.feature_views:
        view = store.get_feature_view(view_name)
        stored_name = compute_versioned_name(view, versioning)
        specs = [s for s in metadata.features if s.source == "feast" and s.feature_view == view_name and s.ref]
        join_keys: dict[str, str] = {}
        key_types: dict[str, EntityType] = {}
        for column in view.entity_columns:
            entity = entity_of_join_key.get(column.name)
            join_keys[column.name] = entity.field if entity else column.name
            key_types[column.name] = entity.dtype if entity else "string"
        views.append(
            ViewLayout(
                name=stored_name,
                join_keys=join_keys,
                key_types=key_types,
                columns=[s.name for s in specs],
                fields=[_mmh3(f"{stored_name}:{s.ref.split(':', 1)[1]}") for s in specs if s.ref],
            )
        )
    return RedisLayout(project=config.project, views=views, key_version=config.entity_key_serialization_version)


def decode_timestamp_seconds(raw: bytes | None) -> float | None:
    """Seconds of a serialized ``google.protobuf.Timestamp`` (Feast's ``_ts:<view>`` field)."""
    if not raw:
        return None
    seconds = nanos = 0
    pos = 0
    while pos < len(raw):
        tag, pos = _varint(raw, pos)
        value, pos = _varint(raw, pos)
        if tag >> 3 == 1:
            seconds = _signed64(value)
        elif tag >> 3 == 2:
            nanos = value
    return seconds + nanos / 1e9 if seconds else None


#: Entity keys kept per reader; hot entities repeat, the rest are recomputed (a few microseconds).
MAX_CACHED_KEYS = 200_000


class RedisOnlineReader:
    """The worker's feature read: one pipelined HMGET per distinct (view, entity) of a batch."""

    def __init__(self, client: Any, layout: RedisLayout, timeout_s: float) -> None:
        self._client = client
        self._layout = layout
        self._timeout_s = timeout_s
        self._keys: dict[tuple[str, tuple[object, ...]], bytes] = {}
        self._ts_fields = {view.name: f"_ts:{view.name}".encode() for view in layout.views}

    def _key(self, view: ViewLayout, row: Mapping[str, object]) -> bytes:
        values = tuple(row[join_key] for join_key in view.join_keys)
        key = self._keys.get((view.name, values))
        if key is None:
            if len(self._keys) >= MAX_CACHED_KEYS:
                self._keys.clear()
            key = self._keys[(view.name, values)] = redis_key(
                self._layout.project,
                dict(zip(view.join_keys, values, strict=True)),
                view.key_types,
                self._layout.key_version,
            )
        return key

    async def __call__(self, entity_rows: list[dict[str, object]]) -> OnlineRows:
        """Per entity row (join key -> value): the model's feast columns and each view's timestamp."""
        pipe = self._client.pipeline(transaction=False)
        slots: dict[bytes, int] = {}
        plan: list[list[int]] = []
        for row in entity_rows:
            row_plan = []
            for view in self._layout.views:
                key = self._key(view, row)
                slot = slots.get(key + view.name.encode())
                if slot is None:
                    slot = slots[key + view.name.encode()] = len(slots)
                    pipe.hmget(key, [*view.fields, self._ts_fields[view.name]])
                row_plan.append(slot)
            plan.append(row_plan)
        replies: list[list[bytes | None]] = await bounded_read(pipe.execute(), self._timeout_s, len(entity_rows))
        decoded = [[decode_value(raw) for raw in reply[:-1]] for reply in replies]
        stamps = [decode_timestamp_seconds(reply[-1]) for reply in replies]
        values: list[dict[str, object]] = []
        view_timestamps: list[dict[str, float]] = []
        for row_plan in plan:
            row_values: dict[str, object] = {}
            row_stamps: dict[str, float] = {}
            for view, slot in zip(self._layout.views, row_plan, strict=True):
                row_values.update(zip(view.columns, decoded[slot], strict=True))
                stamp = stamps[slot]
                if stamp is not None:
                    row_stamps[view.name] = stamp
            values.append(row_values)
            view_timestamps.append(row_stamps)
        return OnlineRows(values=values, view_timestamps=view_timestamps)


# --- connecting: one client construction for the readers, one access check at start --------------------


def redis_client(settings: RedisSettings) -> redis.asyncio.Redis:
    """The fast reader's client: ``REDIS_URL`` (user, password, database, TLS) and the ``REDIS_TLS_*`` files.

    Feast's reader gets the same through :meth:`RedisSettings.feast_connection_string`. The client
    connects lazily, in the event loop that first uses it.
    """
    return redis.asyncio.Redis.from_url(settings.redis_url.get_secret_value(), **settings.redis_tls_options())


#: Join key of the key :func:`check_redis_access` reads: no Feast entity is named so, nothing is stored there.
_PROBE_JOIN_KEY = "__driftline_access_check__"


def check_redis_access(settings: RedisSettings, project: str, timeout_s: float = 5.0) -> str | None:
    """Read one key of ``project``'s layout the way the readers do: connect, TLS, AUTH, SELECT, HMGET.

    What only the operator can fix (the credentials, the user's rights, the TLS handshake) raises
    :class:`FeatureStoreAccessError` with a one-line reason that never holds the password. A Redis
    that does not answer returns why (a worker starts anyway and scores degraded until it answers);
    None when the read succeeds.
    """
    url = settings.redis_url.get_secret_value()
    where = f"Redis at {mask_url(url)}"
    client = redis.Redis.from_url(
        url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, **settings.redis_tls_options()
    )
    try:
        # redis-py annotates key names as str; bytes (Feast's binary keys) are sent as they are.
        client.hmget(redis_key(project, {_PROBE_JOIN_KEY: ""}), [f"_ts:{_PROBE_JOIN_KEY}"])  # type: ignore[arg-type]
    except redis.exceptions.AuthenticationError as exc:
        raise FeatureStoreAccessError(
            f"{where} refused the credentials{_who(url)}: {_reason(exc, url)}; check the user and password in REDIS_URL"
        ) from exc
    except redis.exceptions.NoPermissionError as exc:
        user = unquote(urlparse(url).username or "default")
        raise FeatureStoreAccessError(
            f"{where}: user {user!r} may not read the feature keys of Feast project {project!r} "
            f"({_reason(exc, url)}); the readers need HMGET on keys ending in the project name "
            f"(ACL: %R~*{project} +hmget, and +select for a database other than 0)"
        ) from exc
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        tls = _tls_failure(exc)
        if tls is None:
            return (
                f"{where} does not answer: {_reason(exc, url)} (is it running, and does that port serve "
                "what REDIS_URL's scheme says: redis:// plain, rediss:// TLS?)"
            )
        raise FeatureStoreAccessError(f"{where}: TLS handshake failed: {tls}") from exc
    except redis.exceptions.ResponseError as exc:  # e.g. a database index the server does not have
        raise FeatureStoreAccessError(f"{where} refused the read: {_reason(exc, url)}") from exc
    finally:
        client.close()
    return None


def _who(url: str) -> str:
    parsed = urlparse(url)
    if parsed.username:
        return f" of user {unquote(parsed.username)!r}"
    return " (the default user's password)" if parsed.password else " (REDIS_URL gives no password)"


def _reason(exc: BaseException, url: str) -> str:
    """The first line of a client error, with REDIS_URL's password masked should a server ever echo it."""
    lines = str(exc).strip().splitlines()
    text = lines[0].rstrip(".") if lines else type(exc).__name__
    password = urlparse(url).password
    for secret in {password, unquote(password)} if password else ():
        text = text.replace(secret, "**********")
    return text


_SSL_SOURCE = re.compile(r"\s*\(_ssl\.c:\d+\)\.?$")


def _tls_failure(exc: BaseException) -> str | None:
    """What went wrong in TLS, with the setting to look at; None when ``exc`` is no TLS failure."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return (
                f"certificate verify failed: {seen.verify_message}; REDIS_TLS_CA_CERT must name the CA that signed "
                "Redis's certificate, issued for the host in REDIS_URL"
            )
        if isinstance(seen, ssl.SSLError):
            text = _SSL_SOURCE.sub("", str(seen.strerror or seen.reason or seen))
            return (
                f"{text}; is it TLS on that port, and does Redis ask for a client certificate "
                "(REDIS_TLS_CERT / REDIS_TLS_KEY)?"
            )
        seen = seen.__cause__ or seen.__context__
    return None
