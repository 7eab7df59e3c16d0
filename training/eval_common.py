"""What every evaluation driver shares: the model (``resolve_model``), batched generation
(``generate_batch``), the prediction file with resume (``PredictionFile``) and a progress bar.

Why a prediction file: a long evaluation run must survive a kill. Predictions are appended to a
tab-separated file batch by batch (flushed and fsynced), and a re-run generates only the rows whose key
is not yet in the file; scoring reads the file back, so the metrics of a resumed run equal those of an
uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from biomedgpt.core.errors import InputError

log = logging.getLogger(__name__)

MAX_NEW_TOKENS = {"caption": 256, "protein": 128, "mcqa": 16}


# ----------------------------------------------------------------------------- prediction files
class PredictionFile:
    """An append-only TSV of predictions (``csv.QUOTE_NONE``, tab-separated, fixed header).

    Resuming: rows already in the file are read back as a multiset of keys, so a re-run generates
    only what is missing. A row cut off by a kill (no final newline) is dropped before appending.
    Each batch is flushed and fsynced, so at most the batch in flight is lost. Tabs and newlines in
    generated text become spaces (the format has no quoting).
    """

    def __init__(self, path: str | Path, header: Sequence[str], key_columns: Sequence[str]):
        self.path = Path(path)
        self.header = tuple(header)
        self.key_index = [self.header.index(c) for c in key_columns]

    def existing(self) -> list[tuple[str, ...]]:
        """Complete rows already in the file (header checked; a torn last line is truncated away)."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return []
        raw = self.path.read_bytes()
        if not raw.endswith(b"\n"):
            cut = raw.rfind(b"\n") + 1
            log.warning("%s: dropping an incomplete last line (the previous run was interrupted)", self.path)
            with self.path.open("r+b") as handle:
                handle.truncate(cut)
            raw = raw[:cut]
        lines = raw.decode("utf-8").split("\n")
        if tuple(lines[0].split("\t")) != self.header:
            raise InputError(f"{self.path}: header {lines[0]!r} is not {chr(9).join(self.header)!r}; "
                             "use another --out file (this one holds something else)")
        rows = []
        for number, line in enumerate(lines[1:], 2):
            if not line:
                continue
            cells = line.split("\t")
            if len(cells) != len(self.header):
                raise InputError(f"{self.path} line {number}: {len(cells)} columns instead of {len(self.header)}")
            rows.append(tuple(cells))
        return rows

    def key(self, row: Sequence[str]) -> tuple[str, ...]:
        return tuple(row[i] for i in self.key_index)

    def append(self, rows: Iterable[Sequence[str]]) -> None:
        new_file = not self.path.exists() or self.path.stat().st_size == 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8", newline="") as handle:
            if new_file:
                handle.write("\t".join(self.header) + "\n")
            for row in rows:
                handle.write("\t".join(cell(c) for c in row) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


def cell(value: Any) -> str:
    """A value as one TSV cell: tabs and newlines become single spaces (the format has no quoting)."""
    return " ".join(str(value).split())


def out_path(out: str | Path | None, prefix: str) -> Path:
    """``out``, or a new temporary ``.tsv`` file named with ``prefix`` when None."""
    if out is not None:
        return Path(out)
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=".tsv")
    os.close(fd)
    return Path(name)


def pending(records: Sequence[Any], keys: Sequence[tuple[str, ...]], done: Counter) -> list[int]:
    """Indices of records whose key is not (or not often enough) in the file already."""
    left = Counter(done)
    todo = []
    for i, key in enumerate(keys):
        if left[key] > 0:
            left[key] -= 1
        else:
            todo.append(i)
    return todo


def predict_resumable(table: PredictionFile, records: Sequence[Any], keys: Sequence[tuple[str, ...]], *,
                      batch_size: int, desc: str, progress: bool, predict: Callable[[list[Any]], list[str]],
                      row: Callable[[Any, str], tuple]) -> tuple[list[tuple[str, ...]], int]:
    """Predict the records ``table`` does not hold yet, ``batch_size`` at a time, appending ``row(record,
    prediction)`` after each batch; returns ``(the rows to score, in the order of keys; how many were generated)``."""
    todo = pending(records, keys, Counter(table.key(row) for row in table.existing()))
    with progress_bar(len(todo), desc, progress) as bar:
        for start in range(0, len(todo), batch_size):
            batch = [records[i] for i in todo[start:start + batch_size]]
            outputs = predict(batch)
            table.append(row(record, output) for record, output in zip(batch, outputs))
            bar.update(len(batch))
    return select(table.existing(), keys, table.key), len(todo)


def select(rows: Sequence[tuple[str, ...]], keys: Sequence[tuple[str, ...]], key_of: Callable) -> list[tuple[str, ...]]:
    """For each wanted key (in order), one row of the file with that key: what gets scored."""
    pool: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
    for row in rows:
        pool.setdefault(key_of(row), []).append(row)
    chosen = []
    for key in keys:
        bucket = pool.get(key)
        if bucket:
            chosen.append(bucket.pop(0))
    return chosen


# ----------------------------------------------------------------------------------- model access
def resolve_model(model: Any, *, allow_lm: bool = False):
    """A loaded model: ``biomedgpt.model.load_model(name_or_path)`` for a string; None stays None.

    With ``allow_lm`` (MCQA), a folder holding a plain Hugging Face causal LM — what ``biomedgpt train
    lm|qa`` writes to ``run_dir/model`` — loads as an ``(LM, tokenizer)`` pair instead.
    """
    if model is None or not isinstance(model, (str, Path)):
        return model
    path = Path(model).expanduser()
    if allow_lm and _is_hf_causal_lm(path):
        from biomedgpt.training.lm import load_causal_lm  # deferred: torch and transformers

        lm, tokenizer = load_causal_lm(str(path))
        return lm.eval(), tokenizer
    from biomedgpt.model import load_model  # deferred: torch and transformers

    return load_model(str(model))


def _is_hf_causal_lm(path: Path) -> bool:
    """A folder whose config.json is a transformers config (``model_type``), not a BioMedGPT manifest."""
    config = path / "config.json"
    if not (path.is_dir() and config.is_file()):
        return False
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and "model_type" in data and "format" not in data


def generate_batch(model: Any, prompts: list[str], *, molecules: list[str] | None = None,
              proteins: list[str] | None = None, max_new_tokens: int, one_paragraph: bool = False) -> list[str]:
    """One batched call of ``BioMedGPT.generate``; a batch answer count mismatch is a bug, reported.

    ``one_paragraph`` stops a row at its first line break: a ChEBI-20 description and a Swiss-Prot
    answer are one paragraph, so anything after a line break is the model starting something else."""
    kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens}
    if one_paragraph:
        kwargs["stop_strings"] = ["\n"]
    if molecules is not None:
        kwargs["molecules"] = molecules
    if proteins is not None:
        kwargs["proteins"] = proteins
    outputs = model.generate(prompts, **kwargs)
    if isinstance(outputs, str):
        outputs = [outputs]
    outputs = [getattr(o, "text", o) for o in outputs]
    if len(outputs) != len(prompts):
        raise RuntimeError(f"model.generate returned {len(outputs)} answers for {len(prompts)} prompts")
    return [str(o).strip() for o in outputs]


def progress_bar(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm  # deferred: only a run that generates needs it

    return tqdm(total=total, desc=desc, unit="sample", disable=not enabled or total == 0)
