"""Logging set-up, done once by each entry point."""

from __future__ import annotations

import logging


def configure_logging(level: str = "INFO") -> None:
    """Configure logging once, at the entry point."""
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    # kafka-python narrates every connection at INFO; its warnings are what a person needs.
    quiet = max(logging.WARNING, logging.getLevelName(level))
    logging.getLogger("kafka").setLevel(quiet)
    # Feast logs every registry cache refresh at INFO.
    logging.getLogger("feast").setLevel(quiet)
