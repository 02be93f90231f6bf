"""
The mapped object-storage example reads ``SESTEK_EXAMPLE_MODEL_IDS`` as people write comma-separated lists (a
space after the comma, a trailing comma, an id listed twice): ids trimmed, empty ones dropped, each id once.
"""

from __future__ import annotations

import pytest

from tests.example_dags.test_example_dags import load_example

MODULE = "example_sestek_models_from_object_storage"


@pytest.mark.parametrize(
    "raw",
    [
        "acme-support-en, acme-support-de",  # a space after the comma
        "acme-support-en,acme-support-de,",  # a trailing comma
        " acme-support-en ,\tacme-support-de\n",  # as pasted from a file
    ],
)
def test_model_ids_are_trimmed_and_empty_entries_dropped(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    """
    Each entry becomes a mapped ``train`` instance: `` acme-support-de`` or ``""`` would only fail at run time,
    on a worker, with a model-id validation error (the production test itself strips the same variable).
    """
    monkeypatch.setenv("SESTEK_EXAMPLE_MODEL_IDS", raw)
    assert load_example(MODULE).MODEL_IDS == ["acme-support-en", "acme-support-de"]


def test_a_model_id_listed_twice_is_trained_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    Two mapped instances of one model id either race (the second attaches to the first's training) or, run one
    after the other, train the same model twice in one run: one instance per model.
    """
    monkeypatch.setenv("SESTEK_EXAMPLE_MODEL_IDS", "acme-support-en,acme-support-de,acme-support-en")
    assert load_example(MODULE).MODEL_IDS == ["acme-support-en", "acme-support-de"]
