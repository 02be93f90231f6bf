"""The production-shaped deployment of ``tests/production/test_production.py``, one per attack module."""

from tests.production.test_production import production  # noqa: F401
