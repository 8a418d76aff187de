"""Drift: reference sketches, the streaming monitor, freshness, the drift log, simulation and report.

One home used by the worker and by training alike; imports only the kernel.
"""
