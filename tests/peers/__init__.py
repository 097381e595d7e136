"""Real test peers (nginx, nsd, blackbox_exporter, ...) started on loopback by fixtures."""
