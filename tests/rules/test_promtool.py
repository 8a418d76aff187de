"""promtool on the Prometheus files: config and rules are valid, and every alert's unit tests pass.

promtool comes with Prometheus (Debian package ``prometheus``; .ci/run installs it). Missing under
CI is a failure; on a developer machine without it these tests are skipped with the reason.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import require_binary

ROOT = Path(__file__).resolve().parents[2]
RULE_FILES = [ROOT / "prometheus" / "alerts.yml"]
RULE_TESTS = sorted(Path(__file__).parent.glob("*_test.yml"))


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [require_binary("promtool"), *map(str, args)], capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, f"promtool {' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _alert_names() -> list[str]:
    names = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            names += [rule["alert"] for rule in group["rules"] if "alert" in rule]
    return names


def test_config_is_valid() -> None:
    # Also checks that the rule files it names exist and parse.
    promtool("check", "config", ROOT / "prometheus" / "prometheus.yml")


def test_rule_files_are_valid() -> None:
    promtool("check", "rules", *RULE_FILES)


def test_rule_unit_tests_pass() -> None:
    assert RULE_TESTS, "no promtool test files in tests/rules"
    output = promtool("test", "rules", *RULE_TESTS).stdout
    assert "SUCCESS" in output


def _cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    for path in RULE_TESTS:
        data = yaml.safe_load(path.read_text())
        rule_files = {(path.parent / name).resolve() for name in data["rule_files"]}
        assert rule_files <= {p.resolve() for p in RULE_FILES}, f"{path.name} tests an unknown rule file"
        for case in data["tests"]:
            cases += case.get("alert_rule_test", [])
    return cases


@pytest.mark.parametrize("alert", _alert_names())
def test_every_alert_is_tested_firing_and_silent(alert: str) -> None:
    checks = [check for check in _cases() if check["alertname"] == alert]
    assert any(check.get("exp_alerts") for check in checks), f"{alert}: no test where it fires"
    assert any(not check.get("exp_alerts") for check in checks), f"{alert}: no test where it stays silent"
