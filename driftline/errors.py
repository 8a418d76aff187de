"""The one exception hierarchy of driftline; library errors are translated into these at the edges."""

from __future__ import annotations


class DriftlineError(Exception):
    """Root of every error driftline raises on purpose."""


class ConfigError(DriftlineError):
    """A setting is missing or inconsistent."""


class InvalidEventError(DriftlineError):
    """An event cannot be scored; it becomes a dead letter with this reason."""

    def __init__(self, error_type: str, reason: str) -> None:
        super().__init__(reason)
        self.error_type = error_type
        self.reason = reason


class ModelLoadError(DriftlineError):
    """A model artifact cannot be loaded (missing, corrupted, checksum mismatch, unusable)."""


class ChecksumMismatchError(ModelLoadError):
    """The artifact's SHA-256 differs from the registry's record; it is never deserialized."""


class FeatureStoreError(DriftlineError):
    """The online feature store failed or timed out."""


class FeatureStoreAccessError(ConfigError):
    """The online store refused the configured credentials, the user's rights or the TLS handshake."""


class StackError(DriftlineError):
    """The embedded broker or Redis could not be started or stopped."""
