"""Drift: reference sketches, the streaming monitor, freshness, the drift log, simulation and report.

Their records (an evaluation, freshness, a run) are typed in ``drift.records``.

One home used by the worker and by training alike; imports only the kernel.
"""
