"""The ``wardwatch`` subcommands, one module each, each exporting ``register(subparsers)``."""
