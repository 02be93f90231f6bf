"""Apache Airflow provider for Sestek AI (Knovvu) Generative-QA training and inference."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
