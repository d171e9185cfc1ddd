"""Pure statistics core: feature and model profiles, their merge and serialization,
and drift statistics between a reference profile and a current one.

No Kafka, Faust or Prometheus imports here: every function is a pure computation
on numpy/pyarrow columns and datasketches sketches, testable on its own.
"""
