"""The ``kapsule`` command: one of the three entry points (with ``api`` and ``jobs``).

It only translates: options into a ``JobParams`` and calls of the job service, results and
``KapsuleError``s into output and exit codes. Everything it does is done by the library.
"""
