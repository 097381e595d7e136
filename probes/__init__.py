"""One module per protocol, each behind the contract in probes.base."""
