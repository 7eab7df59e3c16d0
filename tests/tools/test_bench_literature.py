"""The recombined real text of ``bench/literature.py``: deterministic, prefix-stable, held-out sentences kept out.

No model is loaded: ``recombine`` only regroups sentences (and hashes chunk ids).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "literature.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_literature", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def _abstracts(n: int = 40) -> list[tuple[str | None, list[str]]]:
    out = []
    for a in range(n):
        sentences = [f"Abstract {a} sentence {s} says " + " ".join(f"w{a}x{s}y{i}" for i in range(6 + (a * s) % 25)) + "."
                     for s in range(3 + a % 6)]
        out.append((f"Title {a}" if a % 3 else None, sentences))
    return out


def test_recombine_is_deterministic_and_prefix_stable(bench):
    abstracts = _abstracts()
    large, held_large = bench.recombine(abstracts, 300)
    again, held_again = bench.recombine(abstracts, 300)
    small, held_small = bench.recombine(abstracts, 120)
    assert large == again and held_large == held_again
    assert small == large[:120] and held_small == held_large
    assert bench.recombine(abstracts, 50, seed=1)[0] != large[:50]


def test_recombined_passages_are_real_sentences_within_the_word_limits(bench):
    abstracts = _abstracts()
    passages, held = bench.recombine(abstracts, 400, min_words=40, max_words=120)
    pool = {s for _, sentences in abstracts for s in sentences}
    titles = {t for t, _ in abstracts}
    assert held and all(s in pool for s in held)
    for p in passages:
        assert len(p.text.split()) <= 120
        assert p.metadata["source"] == "recombined" and p.metadata.get("title") in titles
        assert p.embed_text == (f"{p.metadata['title']}. {p.text}" if "title" in p.metadata else p.text)
        for sentence in held:  # a held-out sentence is a query no passage contains
            assert sentence not in p.text
    assert len({p.id for p in passages}) == len({p.text for p in passages}) == len(passages)
    words = [len(p.text.split()) for p in passages]
    assert sum(w >= 40 for w in words) / len(words) > 0.9  # most reach their target; the cap can stop one short
    # passages mix abstracts: many contain sentences of more than one
    mixed = sum(len({w.split("x")[0] for w in p.text.split() if w.startswith("w")}) > 1 for p in passages)
    assert mixed > len(passages) // 2


def test_cache_is_keyed_by_text_and_reused(bench, tmp_path):
    import numpy as np

    calls = []

    class Fake:
        stamp = "fake-model"
        threads = 1

        def __call__(self, texts):
            calls.append(len(texts))
            return np.asarray([[float(len(t))] + [0.0] * 383 for t in texts], np.float32)

    texts = [f"text {i}" * (1 + i % 3) for i in range(25)]
    first, info = bench.cached_vectors(texts, Fake(), tmp_path, block=10)
    assert calls == [10, 10, 5] and info["chunks_embedded_this_run"] == 25
    second, info = bench.cached_vectors(texts[:20], Fake(), tmp_path, block=10)
    assert calls == [10, 10, 5] and info["chunks_embedded_this_run"] == 0  # a prefix reuses the blocks
    assert np.array_equal(first[:20], second)
    changed = texts[:10] + ["other"] + texts[11:20]
    bench.cached_vectors(changed, Fake(), tmp_path, block=10)
    assert calls == [10, 10, 5, 10]  # only the changed block is embedded again
    assert not list(tmp_path.glob(".*.tmp"))
