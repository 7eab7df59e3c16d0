"""The literature store's quick embedding function equals sentence-transformers': ``pytest tests/tools/test_quick_embeddings.py``.

Why: a literature question embeds its query through the ONNX Runtime copy of MiniLM (``tools/embeddings.py``,
``_quick_function``) instead of loading torch and sentence-transformers (issue 16, item 2). That is allowed only if
the vectors are the model's within float error and the store returns the same passages; texts too long for the
ONNX copy's 128 tokens (ingested chunks) must still go to sentence-transformers.
"""

from __future__ import annotations

import numpy as np

from biomedgpt.core.settings import get_settings
from biomedgpt.tools.embeddings import _load, default_model_path, embedding_function

QUERIES = [
    "What does the literature say about BRCA1 and breast cancer?",
    "skin tumour caused by beta-catenin mutations",
    "aspirin and colorectal cancer",
    "Which genes are linked to Huntington disease?",
    "ataxia telangiectasia",
]


def test_short_texts_embed_as_sentence_transformers_does():
    quick = embedding_function(get_settings())
    reference = _load(str(default_model_path()), "cpu")
    assert quick.name() == reference.name() and quick.get_config() == reference.get_config()
    mine, theirs = np.asarray(quick(QUERIES)), np.asarray(reference(QUERIES))
    assert mine.shape == theirs.shape == (len(QUERIES), 384)
    assert np.abs(mine - theirs).max() < 1e-5


def test_long_texts_go_to_sentence_transformers():
    quick = embedding_function(get_settings())
    reference = _load(str(default_model_path()), "cpu")
    long_text = " ".join(["the protein binds the receptor and regulates transcription in the nucleus"] * 30)
    assert np.array_equal(np.asarray(quick([long_text, "short"])), np.asarray(reference([long_text, "short"])))


def test_the_store_finds_the_same_passages_either_way():
    from biomedgpt.tools.literature import LiteratureStore

    store = LiteratureStore()
    store.search("warm-up", k=1)  # the bundled corpus, ingested once
    reference = _load(str(default_model_path()), "cpu")
    for query in QUERIES:
        quick = store._call("query", store.collection.query, query_texts=[query], n_results=10, include=[])
        slow = store._call("query", store.collection.query, query_embeddings=reference([query]), n_results=10,
                           include=[])
        assert quick["ids"] == slow["ids"], query
