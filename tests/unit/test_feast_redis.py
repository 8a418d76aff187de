"""The raw floor's reading of Feast's Redis layout agrees with Feast's own encoders, byte for byte."""

from __future__ import annotations

import math
import warnings

import pytest
from feast.infra.key_encoding_utils import serialize_entity_key as feast_serialize
from feast.infra.online_stores.helpers import _redis_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from hypothesis import given
from hypothesis import strategies as st

from driftline.registry import EntityType
from feature_repo.redis_reader import RedisLayout, ViewLayout, decode_value, redis_key, serialize_entity_key

keys = st.text(min_size=1, max_size=20)


def _entity_key(join_keys: dict[str, str]) -> EntityKey:
    return EntityKey(join_keys=list(join_keys), entity_values=[Value(string_val=v) for v in join_keys.values()])


@given(st.dictionaries(keys, st.text(max_size=30), min_size=1, max_size=3))
def test_entity_key_serialization_matches_feast_v3(join_keys: dict[str, str]) -> None:
    expected = feast_serialize(_entity_key(join_keys), entity_key_serialization_version=3)
    assert serialize_entity_key(join_keys) == expected


_KEY_VALUES = {
    "string": st.text(max_size=30),
    "int64": st.integers(-(2**63), 2**63 - 1),
    "int32": st.integers(-(2**31), 2**31 - 1),
}
_PROTO_FIELD = {"string": "string_val", "int64": "int64_val", "int32": "int32_val"}


TypedKeys = tuple[dict[str, object], dict[str, EntityType]]


@st.composite
def typed_keys(draw: st.DrawFn) -> TypedKeys:
    """One to three join keys of mixed types (compound keys included) and their values."""
    names = draw(st.lists(keys, min_size=1, max_size=3, unique=True))
    types: dict[str, EntityType] = {n: draw(st.sampled_from(["string", "int64", "int32"])) for n in names}
    return {n: draw(_KEY_VALUES[t]) for n, t in types.items()}, types


@given(typed_keys(), st.sampled_from([2, 3]))
def test_typed_and_compound_keys_match_feast(keyed: TypedKeys, version: int) -> None:
    join_keys, types = keyed
    proto = EntityKey(
        join_keys=list(join_keys),
        entity_values=[Value(**{_PROTO_FIELD[types[k]]: v}) for k, v in join_keys.items()],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Feast warns on version 2, which it still reads
        expected = feast_serialize(proto, entity_key_serialization_version=version)
    assert serialize_entity_key(join_keys, types, version) == expected


def test_an_int64_key_differs_from_its_string_spelling() -> None:
    # The bug this guards against: an Int64 entity read with a string key finds nothing, silently.
    assert serialize_entity_key({"driver_id": 1001}, {"driver_id": "int64"}) != serialize_entity_key(
        {"driver_id": "1001"}
    )


def test_redis_key_matches_feast() -> None:
    join_keys = {"customer_id": "C00042"}
    assert redis_key("driftline", join_keys) == _redis_key("driftline", _entity_key(join_keys), 3)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Value(double_val=3.25), 3.25),
        (Value(double_val=-0.0), -0.0),
        (Value(double_val=0.0), 0.0),
        (Value(int64_val=123456789012), 123456789012),
        (Value(int64_val=-5), -5),
        (Value(int64_val=0), 0),
        (Value(int32_val=-7), -7),
        (Value(string_val="electronics"), "electronics"),
        (Value(string_val=""), ""),
        (Value(bool_val=True), True),
        (Value(bool_val=False), False),
        (Value(bytes_val=b"\x00\x01"), b"\x00\x01"),
        (Value(unix_timestamp_val=1_700_000_000), 1_700_000_000),
    ],
)
def test_decode_value_matches_protobuf(value: Value, expected: object) -> None:
    decoded = decode_value(value.SerializeToString())
    assert decoded == expected
    assert type(decoded) is type(expected)


def test_float_and_null_values() -> None:
    assert decode_value(Value(float_val=1.5).SerializeToString()) == 1.5
    assert decode_value(b"") is None  # Feast's empty Value: null
    assert decode_value(None) is None  # field absent from the hash
    assert math.isnan(decode_value(Value(double_val=math.nan).SerializeToString()))  # type: ignore[arg-type]


@given(st.floats(allow_nan=False), st.integers(min_value=-(2**63), max_value=2**63 - 1), st.text())
def test_decode_value_round_trips(number: float, integer: int, text: str) -> None:
    assert decode_value(Value(double_val=number).SerializeToString()) == number or number == 0.0
    assert decode_value(Value(int64_val=integer).SerializeToString()) == integer
    assert decode_value(Value(string_val=text).SerializeToString()) == text


def test_lists_are_refused() -> None:
    raw = Value(int64_list_val={"val": [1, 2]}).SerializeToString()
    with pytest.raises(ValueError, match="unsupported"):
        decode_value(raw)


def test_layout_json_round_trip() -> None:
    layout = RedisLayout(
        project="p",
        views=[ViewLayout(name="v", join_keys={"customer_id": "customer_id"}, key_types={"customer_id": "int64"},
                          columns=["a", "b"],
                          fields=[b"\x01\x02\x03\x04", b"\xff\x00\x00\x01"])],
    )
    assert RedisLayout.from_json(layout.to_json()) == layout
