"""Session-scoped real services for integration tests: a Kafka-protocol broker and Redis.

Both start on free loopback ports in a temporary folder. A service that cannot start fails the
run with its log; it is never skipped.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftline_tools.stack import BrokerProcess, RedisProcess


@pytest.fixture(scope="session")
def services_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def broker(services_dir: Path) -> Iterator[BrokerProcess]:
    with BrokerProcess(services_dir) as process:
        yield process


@pytest.fixture(scope="session")
def redis_server(services_dir: Path) -> Iterator[RedisProcess]:
    with RedisProcess(services_dir) as process:
        yield process


@pytest.fixture(scope="session")
def bootstrap(broker: BrokerProcess) -> str:
    return broker.bootstrap


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisProcess) -> str:
    return redis_server.url


@pytest.fixture
def unique() -> str:
    """A short suffix that keeps topic and group names of one test apart from every other."""
    return uuid.uuid4().hex[:8]
