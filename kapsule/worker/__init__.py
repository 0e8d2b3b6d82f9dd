"""The job entrypoint: one job execution (``python -m kapsule.worker``), as Cloud Run or the local
launcher starts it."""
