"""Kapsule: a song in, a music video cut to its beats out.

The library owns every decision; notebooks, the CLI, the job entrypoint and the API only call it.
"""

__version__ = "0.1.0"
