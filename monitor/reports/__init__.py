"""Reports: SLA and cutover readiness (wardwatch report)."""
