"""Matching: which enrolled person a face's embedding is, given the gallery's templates and the threshold.

Kept apart from the SQLite store (``gallery.py``), which only reads and writes templates: the decision (top-1 person
by the best template's cosine; below the threshold, nobody) lives here once, and so does the index that makes it
fast on large galleries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FAST_INDEX_MIN = 20_000  # below this, float32 brute force is already well under a millisecond
FLOAT16_BOUND = 2 * 2.0**-11  # |q . t - q . fp16(t)| for unit q and t, with margin: fp16 keeps 11 significant bits


@dataclass
class Match:
    name: str | None  # the person, when the score reaches the threshold; None: nobody
    score: float | None  # cosine similarity to ``person``; None: nobody to compare with (an empty gallery)
    person: str | None  # best candidate even when below threshold; None with an empty gallery


class Float16Index:
    """Exact top-1 by inner product through a faiss float16 scalar-quantizer index (optional dependency)."""

    def __init__(self, index, emb: np.ndarray) -> None:
        self.index, self.emb = index, emb

    @classmethod
    def build(cls, emb: np.ndarray) -> Float16Index | None:
        if len(emb) < FAST_INDEX_MIN:
            return None
        try:
            import faiss  # type: ignore[import-not-found]
        except ImportError:
            return None
        faiss.omp_set_num_threads(1)  # one query at a time: threads only add hand-off costs (4 ms against 1 ms)
        index = faiss.IndexScalarQuantizer(emb.shape[1], faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
        index.train(emb)
        index.add(emb)
        return cls(index, emb)

    def best(self, queries: np.ndarray) -> np.ndarray:
        out = np.empty(len(queries), np.int64)
        for i, q in enumerate(queries):
            k = 16
            while True:
                approx, found = self.index.search(q[None], min(k, len(self.emb)))
                found = found[0][found[0] >= 0]
                exact = self.emb[found] @ q
                top = int(np.argmax(exact))
                # a template outside the k found scores at most approx[k-1] + bound: if that cannot beat the best
                # exact score, the best is proven; otherwise look further
                if k >= len(self.emb) or approx[0][-1] + FLOAT16_BOUND < exact[top]:
                    out[i] = found[top]
                    break
                k *= 4
        return out


class Templates:
    """A gallery's templates as matching reads them: embeddings (N, D), the person index of each, the names, and
    the float16 index when the gallery is large enough to need one (built once per change of the gallery)."""

    def __init__(self, emb: np.ndarray, owner: np.ndarray, names: list[str]) -> None:
        self.emb, self.owner, self.names = emb, owner, names
        self.index = Float16Index.build(emb)

    def match(self, queries: np.ndarray, threshold: float) -> list[Match]:
        """Top-1 person per query by cosine similarity (best template of each person); below threshold: None.

        The top-1 person is the owner of the best template. Up to FAST_INDEX_MIN templates that is one BLAS product
        and an argmax; above it, with faiss installed, a float16 index finds candidates in half the memory traffic
        and they are re-scored in float32, widening the search until the float16 error bound proves no other
        template could win: the same answer as brute force, exactly (benchmarks/gallery_scale.py)."""
        queries = np.asarray(queries, np.float32)
        if len(self.emb) == 0:
            return [Match(None, None, None) for _ in queries]
        best = self.index.best(queries) if self.index is not None else np.argmax(queries @ self.emb.T, axis=1)
        scores = np.einsum("ij,ij->i", queries, self.emb[best])
        out = []
        for t, score in zip(best, scores, strict=True):
            person = self.names[int(self.owner[t])]
            out.append(Match(person if score >= threshold else None, float(score), person))
        return out

    def ranked(self, query: np.ndarray, count: int) -> list[tuple[str, float]]:
        """The ``count`` closest people to one embedding, best first, each by their best template's cosine: what a
        client asking for several candidates (CompreFace's ``prediction_count``) reads. Brute force: asked once per
        face of an uploaded photo, never per frame."""
        if len(self.emb) == 0 or count < 1:
            return []
        scores = self.emb @ np.asarray(query, np.float32)
        best = np.full(len(self.names), -np.inf, np.float32)
        np.maximum.at(best, self.owner, scores)
        order = np.argsort(-best)[:count]
        return [(self.names[int(i)], float(best[i])) for i in order if np.isfinite(best[i])]
