"""Logging set-up, done once by each entry point."""

from __future__ import annotations

import logging
import warnings


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
    # MLflow narrates creating its SQLite tables at INFO, and warns on every pickled sklearn model that
    # pickles run code: driftline verifies each artifact's SHA-256 before it unpickles, and says so.
    logging.getLogger("mlflow.store").setLevel(quiet)
    logging.getLogger("mlflow.sklearn").setLevel(max(logging.ERROR, logging.getLevelName(level)))


def quiet_library_warnings() -> None:
    """Hide library deprecation notices a user can do nothing about (again, after a library reset them).

    kafka-python 3.0 loads its protocol schemas with a deprecated importlib.resources call, and
    importing feast puts a "once" filter for every DeprecationWarning in front of the others.
    """
    warnings.filterwarnings("ignore", message="(read_text|open_text) is deprecated", category=DeprecationWarning)
    # MLflow's dataset and signature helpers advise on inputs driftline builds itself (typed sources,
    # integer columns that the feature matrix turns into floats anyway).
    warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted", category=UserWarning)
    warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer", category=UserWarning)
    # MLflow's SQLite store uses a SQLAlchemy loader option that SQLAlchemy now deprecates.
    warnings.filterwarnings("ignore", message="The ``noload`` loader strategy is deprecated")
