"""Kapsule tests (a package, so fixtures modules like ``tests.emulators`` can be registered as plugins)."""
