"""driftline: event-driven streaming inference with production monitoring."""

__version__ = "0.1.0"
