"""The label join: pending predictions on disk, labels matched by (model, request id)."""
