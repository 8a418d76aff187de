"""REDIS_URL and the REDIS_TLS_* files reach driftline's Redis client and Feast's alike, secrets kept out of errors."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
from feast.infra.online_stores.redis import RedisOnlineStore
from pydantic import ValidationError
from redis.connection import parse_url

from driftline.errors import ConfigError
from driftline.settings import RedisSettings, WorkerSettings

SECRET = "s3cret-sentinel-9f2"


def _feast_kwargs(settings: RedisSettings) -> dict[str, object]:
    """What Feast passes to redis-py's client for the connection string driftline builds."""
    [node], params = RedisOnlineStore._parse_connection_string(settings.feast_connection_string())
    return {"host": node["host"], "port": int(node["port"]), **params}


def _redis_py_kwargs(settings: RedisSettings) -> dict[str, object]:
    """What driftline's own client gets: REDIS_URL as redis-py parses it, plus the TLS files."""
    kwargs = dict(parse_url(settings.redis_url.get_secret_value()))
    ssl = kwargs.pop("connection_class", None) is not None
    kwargs.pop("db", None)  # Feast's string names the database only when it is not 0
    return {**kwargs, **({"ssl": True} if ssl else {}), **settings.redis_tls_options()}


@pytest.fixture
def tls_files(tmp_path: Path) -> dict[str, str]:
    names = ("REDIS_TLS_CA_CERT", "REDIS_TLS_CERT", "REDIS_TLS_KEY")
    files = {name: tmp_path / f"{name.lower()}.pem" for name in names}
    for path in files.values():
        path.write_text("-----BEGIN CERTIFICATE-----\n")
    return {name: str(path) for name, path in files.items()}


@pytest.mark.parametrize(
    "password",
    [SECRET, "12345", "true", "null", '"quoted"', "p@ss/w:rd", "pässwörd", "a=b"],
    ids=["plain", "digits", "json-true", "json-null", "json-string", "reserved", "non-ascii", "equals"],
)
def test_feast_and_driftline_get_the_same_credentials_and_tls_files(password: str, tls_files: dict[str, str]) -> None:
    settings = RedisSettings(REDIS_URL=f"rediss://svc%2Dreader:{quote(password, safe='')}@cache.internal:6380/0",
                             **tls_files)
    feast = _feast_kwargs(settings)
    assert feast == _redis_py_kwargs(settings)
    assert feast["password"] == password and feast["username"] == "svc-reader"
    assert feast["ssl_ca_certs"] == str(Path(tls_files["REDIS_TLS_CA_CERT"]).resolve())
    assert {"ssl_certfile", "ssl_keyfile", "ssl"} <= set(feast)


def test_a_plain_url_gets_neither_ssl_nor_tls_files() -> None:
    settings = RedisSettings(REDIS_URL=f"redis://reader:{SECRET}@h:6379/3")
    assert settings.feast_connection_string() == f"h:6379,db=3,username=reader,password={SECRET}"
    assert settings.redis_tls_options() == {}


def test_a_password_with_a_comma_is_refused_without_showing_it() -> None:
    settings = RedisSettings(REDIS_URL=f"redis://:{SECRET},x@h:1/0")
    with pytest.raises(ConfigError, match="comma") as caught:
        settings.feast_connection_string()
    assert SECRET not in str(caught.value)


def test_tls_files_need_a_rediss_url(tls_files: dict[str, str]) -> None:
    with pytest.raises(ValidationError) as caught:
        WorkerSettings(REDIS_URL=f"redis://:{SECRET}@h:1/0", REDIS_TLS_CA_CERT=tls_files["REDIS_TLS_CA_CERT"])
    [error] = caught.value.errors()
    assert "REDIS_TLS_CA_CERT set, but REDIS_URL does not start with rediss://" in error["msg"]
    assert SECRET not in error["msg"]


def test_a_tls_key_needs_its_certificate(tls_files: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="REDIS_TLS_KEY is set without REDIS_TLS_CERT"):
        RedisSettings(REDIS_URL="rediss://h:1/0", REDIS_TLS_KEY=tls_files["REDIS_TLS_KEY"])


def test_a_missing_tls_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pem"
    with pytest.raises(ValidationError, match=f"REDIS_TLS_CA_CERT={missing}: no such file"):
        RedisSettings(REDIS_URL="rediss://h:1/0", REDIS_TLS_CA_CERT=str(missing))


def test_empty_tls_variables_count_as_unset() -> None:
    settings = RedisSettings(REDIS_URL="redis://h:1/0", REDIS_TLS_CA_CERT="", REDIS_TLS_CERT=" ", REDIS_TLS_KEY="")
    assert settings.redis_tls_ca_cert is None and settings.redis_tls_options() == {}
