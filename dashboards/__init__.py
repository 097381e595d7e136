"""Grafana dashboards as code and their generated JSON (built in the NOC-views issue)."""
