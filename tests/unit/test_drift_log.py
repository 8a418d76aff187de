import numpy as np
import orjson

from drift.log import append_record, drift_log_path


def test_records_with_numpy_values_are_appended_as_json_lines(tmp_path) -> None:
    path = drift_log_path(tmp_path, "fraud", "v1")
    append_record(path, {"a": np.float64(0.5), "b": np.int64(3), "c": np.array([1.0, 2.0]), "d": None})
    append_record(path, {"a": 1.0})
    lines = path.read_bytes().splitlines()
    assert [orjson.loads(line) for line in lines] == [{"a": 0.5, "b": 3, "c": [1.0, 2.0], "d": None}, {"a": 1.0}]
