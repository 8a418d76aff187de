"""The driftline command and what runs around the system: dev stack, demo, fault scenarios, benchmark.

Imports any project package; no project package imports it.
"""
