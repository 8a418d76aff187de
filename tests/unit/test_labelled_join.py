"""The labelled window: events joined to their labels by event_id, bad labels and events counted (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from training.dataset import LABEL, TIMESTAMP
from training.labelled import EXAMPLE_FIELDS, LABEL_TIME, join_labelled

NOW = datetime(2026, 12, 19, 12, 0, tzinfo=UTC)
START = NOW - timedelta(hours=24)


def rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def event(event_id: str, hours_ago: float, **changes: Any) -> bytes:
    doc = {
        "event_id": event_id, "event_time": rfc3339(NOW - timedelta(hours=hours_ago)), "customer_id": "C00001",
        "merchant_id": "M0001", "amount": 12.5, "channel": "pos", "hour_of_day": 9, "is_fraud": 1, **changes,
    }
    return orjson.dumps({k: v for k, v in doc.items() if v is not ...})


def label(event_id: str | None, value: object, hours_ago: float = 0.5, **changes: Any) -> bytes:
    doc = {"event_id": event_id, "label": value, "label_time": rfc3339(NOW - timedelta(hours=hours_ago)), **changes}
    return orjson.dumps({k: v for k, v in doc.items() if v is not None})


def test_events_and_labels_join_by_event_id_into_training_rows() -> None:
    window = join_labelled(
        [event("e2", 2, amount=99.0, channel="online"), event("e1", 3), event("e3", 1)],
        [label("e1", True), label("e2", 0), label("e3", False, hours_ago=0.1)],
        START, NOW,
    )
    frame = window.frame
    assert list(frame.columns) == ["event_id", TIMESTAMP, *EXAMPLE_FIELDS, LABEL, LABEL_TIME]
    assert EXAMPLE_FIELDS == ("customer_id", "merchant_id", "amount", "channel", "hour_of_day")
    assert frame["event_id"].tolist() == ["e1", "e2", "e3"]  # by event time
    assert frame[LABEL].tolist() == [1, 0, 0] and str(frame[LABEL].dtype) == "int64"
    assert frame.loc[1, "amount"] == 99.0 and frame.loc[1, "channel"] == "online"
    assert frame.loc[0, TIMESTAMP] == NOW - timedelta(hours=3)
    assert str(frame[TIMESTAMP].dt.tz) == "UTC" and str(frame[LABEL_TIME].dt.tz) == "UTC"
    assert "is_fraud" not in frame  # the generator's ground truth never leaks in as a feature
    assert (window.labelled, window.positives, window.events_read, window.labels_read) == (3, 1, 3, 3)
    assert window.label_times == [NOW - timedelta(hours=0.5)] * 2 + [NOW - timedelta(hours=0.1)]
    assert window.skipped_labels == {} and window.skipped_events == {}


def test_invalid_labels_are_skipped_and_counted_by_the_workers_reasons() -> None:
    labels = [
        b"not json",
        orjson.dumps({"label": True, "label_time": rfc3339(NOW)}),  # no id at all
        label("e1", None),  # label missing
        label("e1", 2),  # a number a binary model cannot use
        label("e1", "yes"),  # a string is no binary label either
        label("e1", True, hours_ago=-1),  # an hour ahead of the clock
        orjson.dumps({"event_id": "e1", "label": True, "label_time": "2026-12-19T10:00:00"}),  # naive time
        label(None, True, prediction_id="p-1"),  # names a prediction, not an event
        label("e-unknown", True),  # no such event in the window
        label("e1", True),  # the one good label
        None,  # a tombstone
    ]
    window = join_labelled([event("e1", 1)], labels, START, NOW)
    assert window.labelled == 1 and window.labels_read == len(labels)
    assert window.skipped_labels == {
        "bad_label": 3, "from_the_future": 1, "malformed": 3, "missing_id": 1, "no_event_id": 1,
        "no_event_in_window": 1,
    }


def test_a_second_label_of_an_event_is_a_duplicate_and_the_earliest_wins() -> None:
    labels = [label("e1", False, hours_ago=1), label("e1", True, hours_ago=2), label("e1", False, hours_ago=0.5)]
    window = join_labelled([event("e1", 3)], labels, START, NOW)
    assert window.frame[LABEL].tolist() == [1]  # the label known first (2 h ago); corrections are not applied
    assert window.skipped_labels == {"duplicate": 2}


def test_events_outside_the_window_or_unreadable_are_counted_and_their_labels_unmatched() -> None:
    events = [
        event("old", 25),  # before the window
        event("future", -1),  # after now
        event("no-key", 1, customer_id=...),  # a field the model reads is missing
        event("nested", 1, amount={"eur": 1}),
        event("naive", 1, event_time="2026-12-19T10:00:00"),
        b"[1, 2]",
        None,
        event("ok", 1),
        event("ok", 2, amount=1.0),  # a redelivery keeps the first copy
    ]
    labels = [label(name, 1) for name in ("old", "future", "no-key", "ok")]
    window = join_labelled(events, labels, START, NOW)
    assert window.frame["event_id"].tolist() == ["ok"] and window.frame["amount"].tolist() == [12.5]
    assert window.skipped_events == {"malformed": 3, "missing_field": 2, "outside_window": 2}
    assert window.skipped_labels == {"no_event_in_window": 3}


def test_an_empty_window_is_an_empty_frame_with_the_columns() -> None:
    window = join_labelled([], [], START, NOW)
    assert window.labelled == 0 and window.positives == 0 and window.label_times == []
    assert LABEL in window.frame and TIMESTAMP in window.frame
