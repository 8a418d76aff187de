"""``driftline bench``: the worker against a naive Faust agent and a raw asyncio floor, on the same stack."""
