"""Monitoring as code: the alert definitions and dashboards behind ``prometheus/`` and ``grafana/``.

``python -m monitoring.render`` writes the generated files; a unit test keeps the committed copies equal.
"""

from __future__ import annotations

# The Grafana datasource every dashboard panel and alert query uses (grafana/provisioning/datasources).
DATASOURCE_UID = "driftline-prometheus"
# The Prometheus scrape job of the workers (prometheus/prometheus.yml).
WORKER_JOB = "driftline-worker"
# Grafana folder of the dashboards and the Grafana-managed alert rules.
GRAFANA_FOLDER = "Driftline"
