"""Alert engine, notifiers and Prometheus rules (built in the alerting issue)."""
