"""Dataset adapters (one per published format), detection, and the ingest driver."""
