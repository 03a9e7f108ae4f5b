"""The nearest labelled reply: a second opinion where the rules end in their fallback table.

When no text rule matched a reply, the classifier answers from its fallback table, keyed by the
reply code and enhanced code alone (relay/classify.py). `NearestReader` reads the reply's words
instead: it finds the most similar reply of the labelled training corpus (tests/data/corpus/train/,
shipped as the compact file `nearest-corpus.json` beside this module, built by
`scripts/corpus/build_nearest.py`) and gives that reply's category and scope with the similarity.
Policies.judge decides whether to take it (docs/classification.md, "The nearest-reply fallback"):
never where that would list more than the fallback does.

Similarity is the cosine of TF-IDF vectors (sublinear term frequency) over the masked text's words,
word pairs and character 3-5-grams inside words, plus the reply code and enhanced code as tokens;
addresses, URLs, IP addresses, host names and numbers are masked first. Written with the standard
library; everything is built once at load, so a lookup only walks the postings of the reply's own
features (a few ms at most on a 2,048-character reply: bench/bench_classify.py --nearest).
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .classify import effective_enhanced, unwrapped_text
from .decision import Reply

DATA_FILE = Path(__file__).resolve().parent / "nearest-corpus.json"
# The least cosine similarity whose neighbour is taken (chosen on the arrival proxy's tuning rounds,
# world5..world9, docs/classification.md: 0.1 to 0.3 answered within two replies of each other
# there; the more cautious kept).
THRESHOLD = 0.3
# Only the reply's first characters are read: the words that say what went wrong come first, and
# the cost of a lookup grows with the number of features.
MAX_TEXT = 512

_WORD = re.compile(r"[^\W\d_]+")
_ENHANCED = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")
_PUNCTUATION = "<>()[]{},;:'\"!?*"


def words(text: str) -> list[str]:
    """The text's words, lowercased, with addresses, URLs, host names and IP addresses (anything
    with two dots or more) as the words addr, url, host, and without numbers, enhanced codes and
    tokens that mix letters and digits (queue ids, hashes), whose letters are kept only in runs of
    three or more. Linear in the text's length (no backtracking pattern)."""
    out: list[str] = []
    for chunk in text.lower().split():
        chunk = chunk.strip(_PUNCTUATION).rstrip(".")
        if not chunk:
            continue
        if "@" in chunk:
            out.append("addr")
        elif chunk.startswith(("http://", "https://")):
            out.append("url")
        elif _ENHANCED.fullmatch(chunk):
            continue
        elif chunk.count(".") >= 2:
            out.append("host")
        elif any(c.isdigit() for c in chunk):
            out.extend(w for w in _WORD.findall(chunk) if len(w) >= 3)
        else:
            out.extend(_WORD.findall(chunk))
    return out


def features(reply: Reply) -> Counter:
    """The reply's tokens and how often each occurs."""
    text = unwrapped_text(reply)[:MAX_TEXT]
    if reply.code and text.startswith(str(reply.code)):
        text = text[3:]
    found = words(text)
    tokens = [f"w:{w}" for w in found]
    tokens += [f"b:{a} {b}" for a, b in zip(found, found[1:])]
    for w in found:
        w = f"<{w}>"
        size = len(w)
        tokens += [f"g:{w[i:i + n]}" for n in (3, 4, 5) for i in range(max(1, size - n + 1))]
    if reply.code:
        tokens += [f"c:{reply.code}", f"c:{str(reply.code)[0]}"]
    enhanced = effective_enhanced(reply)
    if enhanced:
        tokens += [f"e:{enhanced}", f"e:X.{enhanced.split('.', 1)[1]}"]
    return Counter(tokens)


@dataclass(frozen=True, slots=True)
class Neighbour:
    similarity: float
    category: str
    scope: str
    permanent: bool
    reply: str


class NearestReader:
    """The labelled replies, indexed for cosine similarity.

    A lookup first scores the labelled replies through the postings of the reply's SEEDS
    weightiest rarer features only (those in at most RARE of them: a feature most replies share,
    such as the code 5 or the trigram "<th", names no neighbour and would cost a walk over most
    of the corpus), then computes the exact cosine of the best CANDIDATES of them. Its cost is
    bounded whatever the reply holds."""

    RARE = 0.05
    SEEDS = 48  # the reply's features of most weight that look for candidates
    CANDIDATES = 24

    def __init__(self, entries: Iterable[tuple[str, str, str, bool]]):
        """`entries`: (reply text, category, scope, permanent) of each labelled reply."""
        self._labels: list[tuple[str, str, bool, str]] = []
        docs: list[Counter] = []
        for text, category, scope, permanent in entries:
            self._labels.append((category, scope, permanent, text))
            docs.append(features(Reply.parse(text)))
        df: Counter = Counter()
        for doc in docs:
            df.update(doc.keys())
        # One string object per feature, shared by every vector that holds it (each document's
        # tokens were built anew): about a third of the memory.
        canonical = {t: t for t in df}
        docs = [Counter({canonical[t]: c for t, c in doc.items()}) for doc in docs]
        n = len(docs)
        self._idf = {t: math.log((1 + n) / (1 + c)) + 1 for t, c in df.items()}
        rare = max(1, int(self.RARE * n))
        self._vectors = [self._vector(doc) for doc in docs]
        postings: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for i, vec in enumerate(self._vectors):
            for t, w in vec.items():
                if df[t] <= rare:
                    postings[t].append((i, w))
        self._postings = {t: tuple(p) for t, p in postings.items()}

    def __len__(self) -> int:
        return len(self._labels)

    def _vector(self, counts: Counter) -> dict[str, float]:
        idf = self._idf
        vec = {t: (1 + math.log(c)) * idf[t] for t, c in counts.items() if t in idf}
        norm = math.sqrt(sum(w * w for w in vec.values())) or 1.0
        return {t: w / norm for t, w in vec.items()}

    def nearest(self, reply: Reply) -> Neighbour | None:
        """The most similar labelled reply (ties: the first in the data), or None when the reply
        shares no rarer feature with any."""
        query = self._vector(features(reply))
        partial: dict[int, float] = defaultdict(float)
        postings = self._postings
        seeds = sorted(((w, t) for t, w in query.items() if t in postings), reverse=True)[:self.SEEDS]
        for w, t in seeds:
            for i, dw in postings[t]:
                partial[i] += w * dw
        if not partial:
            return None
        candidates = sorted(partial, key=lambda i: (-partial[i], i))[:self.CANDIDATES]
        best, best_score = -1, -1.0
        for i in candidates:
            vec = self._vectors[i]
            small, large = (vec, query) if len(vec) < len(query) else (query, vec)
            score = sum(w * large.get(t, 0.0) for t, w in small.items())
            if score > best_score + 1e-12 or (abs(score - best_score) <= 1e-12 and i < best):
                best, best_score = i, score
        category, scope, permanent, text = self._labels[best]
        return Neighbour(round(best_score, 6), category, scope, permanent, text)

    @classmethod
    def from_file(cls, path: Path | str = DATA_FILE) -> "NearestReader":
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls((e["reply"], e["category"], e["scope"], e["permanent"]) for e in data["replies"])


@functools.cache
def shipped_reader() -> NearestReader:
    """The reader over the shipped corpus file, built once per process."""
    return NearestReader.from_file(DATA_FILE)


class ShippedReader:
    """The shipped reader as the policies hold it: built at its first lookup, or at `ready()`.
    Building takes ~0.9 s of CPU; a command that never reaches the fallback (check-config, a
    `dsn parse` whose every reply a rule read) never pays it, and a relay builds it before it
    listens (Policies.prepare), never at a lookup. A reload that turns `nearest_fallback` on builds
    it then, once a process, on the event loop where the reload reads every policy file too."""

    __slots__ = ()

    def nearest(self, reply: Reply) -> Neighbour | None:
        return shipped_reader().nearest(reply)

    def ready(self) -> "ShippedReader":
        shipped_reader()
        return self


SHIPPED = ShippedReader()
