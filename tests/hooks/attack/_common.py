"""Shared helpers of the attack tests."""

from __future__ import annotations

from tests.hooks._sides import both_sides

FAST = {"retry_delay": 0.01, "retry_max_delay": 0.05, "retry_limit": 1}

PROGRESS, TOKEN = both_sides(FAST)
