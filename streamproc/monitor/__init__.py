"""The streaming monitor: window state, ingest, aggregation and evaluation."""
