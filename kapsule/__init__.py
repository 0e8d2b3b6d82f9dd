"""Kapsule: a song in, a music video cut to its beats out.

The library owns every decision; notebooks, the CLI, the job entrypoint and the API only call it.
"""

__version__ = "0.1.0"

import sys as _sys

# nbformat (papermill, nbconvert, JupyterLab) imports jsonschema, whose format checkers eagerly import
# rfc3987_syntax when it is installed; that module compiles ~35 Lark grammars at import, ~1.6 s of CPU
# in every process that reads a notebook (each job, the API, the CLI), for an ``iri`` format no
# notebook schema uses (python-jsonschema/jsonschema#1428). Marking it absent makes jsonschema skip
# that one checker, exactly as on an install without the optional package.
_sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
