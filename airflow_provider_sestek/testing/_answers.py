"""
What inference answers from: the passage index of each deployed generation (built from its uploads and
fetched data URLs on first use) and the semantic cache of each model.

Both are kept per model and tagged with the generation they belong to (its ``experiment_id``): a newer
deployment makes the old index and cache stale, and they are replaced on the next use, so memory stays
bounded by the number of models rather than the number of trainings.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ._lifecycle import Generation
from ._retrieval import PassageIndex

__all__ = ["Answers"]

_INDEX_FILE_LIMIT = 4 << 20
_INDEX_MODEL_LIMIT = 8 << 20


class Answers:
    """
    Answer indexes and semantic caches; safe to use from any thread.

    :param documents: ``experiment_id -> [(url, file)]`` of the fetched data URLs (blocks until fetched).
    """

    def __init__(self, documents: Callable[[str], list[tuple[str, str]]]) -> None:
        self._documents = documents
        self._lock = threading.Lock()
        self._indexes: dict[str, tuple[str, PassageIndex]] = {}
        self._building: dict[str, threading.Lock] = {}
        self._caches: dict[str, tuple[str, dict[str, tuple[str, dict[str, Any]]]]] = {}

    def ready_index(self, model_id: str, gen: Generation) -> PassageIndex | None:
        """
        The index of ``gen`` if it was built already (no blocking), else ``None``.

        :param model_id: the model.
        :param gen: its deployed generation.
        """
        with self._lock:
            entry = self._indexes.get(model_id)
        return entry[1] if entry is not None and entry[0] == gen.experiment_id else None

    def index(self, model_id: str, gen: Generation) -> PassageIndex:
        """
        The index of ``gen``, built on first use (blocking: file reads and the URL fetches).

        :param model_id: the model.
        :param gen: its deployed generation.
        """
        ready = self.ready_index(model_id, gen)
        if ready is not None:
            return ready
        with self._lock:
            building = self._building.setdefault(gen.experiment_id, threading.Lock())
        with building:
            ready = self.ready_index(model_id, gen)
            if ready is not None:
                return ready
            index = self._build(gen)
            with self._lock:
                self._indexes[model_id] = (gen.experiment_id, index)
                self._building.pop(gen.experiment_id, None)
            return index

    def _build(self, gen: Generation) -> PassageIndex:
        sources = [(f.filename or f.field, f.path) for f in gen.files]
        sources.extend(self._documents(gen.experiment_id))
        documents: list[tuple[str, str]] = []
        budget = _INDEX_MODEL_LIMIT
        for source, path in sources:
            if budget <= 0:
                break
            try:
                with open(path, "rb") as handle:
                    raw = handle.read(min(_INDEX_FILE_LIMIT, budget))
            except OSError:
                continue
            budget -= len(raw)
            documents.append((source, raw.decode("utf-8-sig", "replace")))
        return PassageIndex.from_documents(documents)

    def cached(self, model_id: str, gen: Generation, key: str) -> tuple[str, dict[str, Any]] | None:
        """
        The semantic-cache entry ``(query, result)`` for ``key`` under ``gen``, if any.

        :param model_id: the model.
        :param gen: its deployed generation.
        :param key: the normalized query.
        """
        with self._lock:
            entry = self._caches.get(model_id)
            if entry is None or entry[0] != gen.experiment_id:
                return None
            return entry[1].get(key)

    def remember(self, model_id: str, gen: Generation, key: str, query: str, result: dict[str, Any]) -> None:
        """
        Cache ``result`` for ``key`` under ``gen`` unless an entry exists (the first answer wins).

        :param model_id: the model.
        :param gen: its deployed generation.
        :param key: the normalized query.
        :param query: the query as asked.
        :param result: the answer.
        """
        with self._lock:
            entry = self._caches.get(model_id)
            if entry is None or entry[0] != gen.experiment_id:
                entry = self._caches[model_id] = (gen.experiment_id, {})
            entry[1].setdefault(key, (query, result))

    def clear(self) -> None:
        """Forget every index and cache (reset)."""
        with self._lock:
            self._indexes.clear()
            self._caches.clear()
            self._building.clear()
