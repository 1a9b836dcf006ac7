"""BM25 over knowledge chunks (bm25s), with a tokenizer that keeps error codes, wait types, host names
and ticket numbers whole: ``LCK_M_U``, ``sql-prod-03``, ``INC-3101`` and ``9002`` match verbatim."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path

import bm25s
import numpy as np
import Stemmer
from bm25s.stopwords import STOPWORDS_EN

log = logging.getLogger(__name__)
logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets its own logger to DEBUG on import

_WORD = re.compile(r"[a-z0-9_][\w.:/-]*[a-z0-9_]|[a-z0-9]")
_SEPARATORS = re.compile(r"[-_.:/]+")
_STOP = frozenset(STOPWORDS_EN) | {"s", "t", "what", "why", "how", "when", "again", "whats"}
_stemmer = Stemmer.Stemmer("english")


def lexical_tokens(text: str) -> list[str]:
    """Lower-cased terms: plain words stemmed, compound names kept whole and also split into parts."""
    out: list[str] = []
    plain: list[str] = []
    for word in _WORD.findall(text.lower()):
        if _SEPARATORS.search(word):
            out.append(word)
            out.extend(p for p in _SEPARATORS.split(word) if p and p not in _STOP)
        elif word not in _STOP:
            plain.append(word)
    out.extend(_stemmer.stemWords(plain))
    return out


class LexicalIndex:
    """A BM25 index over chunk texts; row i is chunk `ids[i]`."""

    def __init__(self, ids: Sequence[str], texts: Sequence[str]) -> None:
        self.ids = list(ids)
        self._bm25 = bm25s.BM25()
        self._empty = not self.ids
        if not self._empty:
            self._bm25.index([lexical_tokens(t) for t in texts], show_progress=False)

    def __len__(self) -> int:
        return len(self.ids)

    def scores(self, query: str) -> np.ndarray:
        """The BM25 score of every row for `query` (0 where no term matches)."""
        if self._empty:
            return np.zeros(0, dtype=np.float32)
        tokens = [t for t in dict.fromkeys(lexical_tokens(query)) if t in self._bm25.vocab_dict]
        if not tokens:
            return np.zeros(len(self.ids), dtype=np.float32)
        return np.asarray(self._bm25.get_scores(tokens), dtype=np.float32)

    def top(self, query: str, n: int, mask: np.ndarray | None = None) -> list[tuple[int, float]]:
        """The `n` best rows with a positive score (only rows where `mask` is true), best first."""
        scores = self.scores(query)
        if scores.size == 0:
            return []
        if mask is not None:
            scores = np.where(mask, scores, 0.0)
        n = min(n, int(np.count_nonzero(scores > 0)))
        if n <= 0:
            return []
        best = np.argpartition(-scores, n - 1)[:n]
        best = best[np.argsort(-scores[best], kind="stable")]
        return [(int(i), float(scores[i])) for i in best]

    def save(self, folder: Path, revision: str) -> None:
        """Write the index to `folder` (replacing what is there), tagged with `revision`."""
        folder.mkdir(parents=True, exist_ok=True)
        if not self._empty:
            self._bm25.save(str(folder), show_progress=False)
        tmp = folder / "ids.json.tmp"
        tmp.write_text(json.dumps({"revision": revision, "ids": self.ids}), encoding="utf-8")
        tmp.replace(folder / "ids.json")

    @classmethod
    def load(cls, folder: Path, revision: str) -> LexicalIndex | None:
        """The index saved in `folder` when it was saved at `revision`, else None."""
        try:
            meta = json.loads((folder / "ids.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if meta.get("revision") != revision:
            return None
        index = cls([], [])
        index.ids = list(meta["ids"])
        index._empty = not index.ids
        if not index._empty:
            try:
                index._bm25 = bm25s.BM25.load(str(folder), show_progress=False)
            except (OSError, ValueError) as exc:
                log.warning("lexical index in %s unreadable (%s): rebuilt", folder, exc)
                return None
        return index
