"""
``make bench``: what the provider costs an Airflow deployment, beside the alternatives, in one run.

``python -m benchmarks`` runs the upload, DAG-parse, token and triggerer benchmarks and writes
``benchmarks/results.json`` and ``BENCHMARKS.md``; ``--smoke`` is the tiny version ``make test`` runs.
"""
