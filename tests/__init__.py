"""Kapsule tests (a package, so fixture modules like ``tests.support.emulators`` register as plugins)."""
