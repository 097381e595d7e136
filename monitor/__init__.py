"""wardwatch service core: inventory, engine, store, exporter, web, CLI."""

__version__ = "0.1.0"
