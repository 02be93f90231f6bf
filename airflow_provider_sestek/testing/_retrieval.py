"""
A tiny extractive question answerer standing in for the published Generative QA model.

It only has to be good enough that a DAG asking about an uploaded FAQ gets the matching passage
back, deterministically and without any model: passages are scored by TF-IDF cosine similarity over
words normalized for case, punctuation and plural/verb endings, so "When do you close?" finds
"... closes at 18 ...".
"""

from __future__ import annotations

import heapq
import math
import re
from collections import Counter
from dataclasses import dataclass

_WORD_RE = re.compile(r"[^\W_]+")
_QUESTION_RE = re.compile(r"^\s*(?:q|question)\s*\d*\s*:\s*", re.IGNORECASE)
_ANSWER_RE = re.compile(r"^\s*(?:a|answer)\s*\d*\s*:\s*", re.IGNORECASE)
_BLANK_LINES_RE = re.compile(r"\n[ \t]*\n")

STOPWORDS = frozenset(
    """
    a an and are as at be but by can could did do does for from had has have how i if in is it its me my
    of on or our so that the their then there these this to was we were what when where which who whom
    why will with would you your
    """.split()
)

NO_ANSWER = "I could not find an answer to your question in the provided documents."


def stem(word: str) -> str:
    """
    Strip the endings a question and its answer most often disagree on: ``closes``, ``closing``,
    ``closed`` and ``close`` all become ``clos``; ``hours`` becomes ``hour``.

    Deliberately light (no dictionary, no exceptions list): it only has to map the forms of one word to
    the same key, not to a real word, and a short word is left alone so ``is`` and ``bus`` survive.

    :param word: a lower-cased word.
    """
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        # cookies -> cooki like cookie, policies -> polici like policy (see the y -> i below).
        word = word[:-3] + "i"
    elif word.endswith(("sses", "shes", "ches", "xes", "zes")):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            # stopped -> stopp -> stop, but called -> call and passed -> pass keep their double letter.
            if word[-1] == word[-2] and word[-1] not in "lsz":
                word = word[:-1]
            break
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    if word.endswith("y") and len(word) > 3:
        # reply, replies, replied and replying all become repli; cookie and cookies both cooki.
        word = word[:-1] + "i"
    return word


def tokenize(text: str) -> list[str]:
    """
    Lower-case ``text``, drop punctuation and stopwords, and :func:`stem` what is left.

    :param text: any text.
    """
    return [stem(word) for word in _WORD_RE.findall(text.casefold()) if word not in STOPWORDS]


@dataclass(frozen=True, slots=True)
class Passage:
    """
    A retrievable piece of a document.

    :param source: the document's name (file name or URL).
    :param content: the passage text as stored.
    :param answer: what to answer when this passage wins (the answer half of a Q/A pair).
    """

    source: str
    content: str
    answer: str


def _qa_answer(lines: list[str]) -> str | None:
    """Return the answer part when ``lines`` form a question/answer pair, else ``None``."""
    first = lines[0]
    labelled = _QUESTION_RE.match(first) is not None
    if not labelled and not (first.rstrip().endswith("?") and len(lines) > 1):
        return None
    for index, line in enumerate(lines[1:], start=1):
        if _ANSWER_RE.match(line):
            rest = [_ANSWER_RE.sub("", line, count=1), *lines[index + 1 :]]
            return "\n".join(rest).strip() or None
    if len(lines) > 1:
        return "\n".join(lines[1:]).strip() or None
    return None


def _split_qa_blocks(lines: list[str]) -> list[list[str]]:
    """Split a paragraph at every labelled question, for FAQs written without blank lines."""
    blocks: list[list[str]] = []
    current: list[str] = []
    for line in lines:
        if current and _QUESTION_RE.match(line):
            blocks.append(current)
            current = []
        current.append(line)
    if current:
        blocks.append(current)
    return blocks


def _windows(lines: list[str], max_chars: int) -> list[str]:
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for line in lines:
        while len(line) > max_chars:
            pieces.append(line[:max_chars])
            line = line[max_chars:]
        if current and size + len(line) + 1 > max_chars:
            pieces.append("\n".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line) + 1
    if current:
        pieces.append("\n".join(current))
    return pieces


def split_passages(source: str, text: str, max_chars: int = 1500) -> list[Passage]:
    """
    Cut a document into passages: blank-line separated paragraphs, split further at Q/A blocks.

    :param source: the document's name, reported back as ``docs[].source``.
    :param text: the document text.
    :param max_chars: longer plain paragraphs are cut into windows of about this size.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    passages: list[Passage] = []
    for paragraph in _BLANK_LINES_RE.split(text):
        lines = [line.strip() for line in paragraph.split("\n") if line.strip()]
        if not lines:
            continue
        for block in _split_qa_blocks(lines):
            content = "\n".join(block)
            answer = _qa_answer(block)
            if answer is not None or len(content) <= max_chars:
                passages.append(Passage(source, content, answer if answer is not None else content))
                continue
            passages.extend(Passage(source, piece, piece) for piece in _windows(block, max_chars))
    return passages


class PassageIndex:
    """
    TF-IDF index over passages with an inverted list, so a query only touches passages sharing a word.

    :param passages: what to index.
    """

    def __init__(self, passages: list[Passage]) -> None:
        self.passages = passages
        counts = [Counter(tokenize(p.content)) for p in passages]
        document_frequency: Counter[str] = Counter()
        for count in counts:
            document_frequency.update(count.keys())
        total = len(passages)
        self._idf = {word: math.log((1 + total) / (1 + df)) + 1.0 for word, df in document_frequency.items()}
        self._postings: dict[str, list[tuple[int, float]]] = {}
        for index, count in enumerate(counts):
            weights = {word: (1.0 + math.log(n)) * self._idf[word] for word, n in count.items()}
            norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
            for word, weight in weights.items():
                self._postings.setdefault(word, []).append((index, weight / norm))

    @classmethod
    def from_documents(cls, documents: list[tuple[str, str]]) -> PassageIndex:
        """
        Build an index from ``(source, text)`` pairs.

        :param documents: the documents.
        """
        passages: list[Passage] = []
        for source, text in documents:
            passages.extend(split_passages(source, text))
        return cls(passages)

    def search(self, query: str, limit: int = 3) -> list[tuple[Passage, float]]:
        """
        Return the best passages for ``query`` with cosine scores in ``(0, 1]``, best first.

        :param query: the question.
        :param limit: how many passages at most.
        """
        query_counts = Counter(word for word in tokenize(query) if word in self._idf)
        if not query_counts:
            return []
        query_weights = {word: (1.0 + math.log(n)) * self._idf[word] for word, n in query_counts.items()}
        norm = math.sqrt(sum(w * w for w in query_weights.values())) or 1.0
        scores: dict[int, float] = {}
        for word, weight in query_weights.items():
            for index, passage_weight in self._postings[word]:
                scores[index] = scores.get(index, 0.0) + weight / norm * passage_weight
        best = heapq.nlargest(limit, scores.items(), key=lambda item: (item[1], -item[0]))
        return [(self.passages[index], min(1.0, round(score, 4))) for index, score in best if score > 0]
