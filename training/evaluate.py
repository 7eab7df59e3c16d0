"""Evaluation drivers: ``eval_captioning(model, "chebi20/test.txt", retrieval="only", out="preds.tsv")`` → metrics dict.

Why: one place that generates predictions (batched), writes them in the MolT5 TSV format, resumes a
killed run from what is already in the file, and scores with the exact published protocol
(``training/metrics.py``; its public functions are re-exported here). Three tasks:

* captioning (ChEBI-20): ``--retrieval only`` copies the description of the nearest reference molecule
  (Morgan/Tanimoto over the shipped ChEBI-20 *validation* set, leave-self-out) — the baseline any
  model must beat; ``on`` puts the retrieval context block in the prompt; ``off`` does not; the default
  is how the model was trained (``model.config.retrieval.enabled``, off when absent);
* protein QA (UniProtQA, either layout): the same, plus exact match overall and per question type;
* MCQA (MedMCQA, PubMedQA, MedQA-USMLE): accuracy overall and per data set, by generation with answer
  extraction (``metrics.extract_choice``) or by option log-likelihood (``metrics.option_logprobs``).
"""

from __future__ import annotations

import csv
import logging
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from biomedgpt.model.conversation import CAPTION_QUESTION
from biomedgpt.model.prompts import default_index, model_structure_prompt, retrieve
from biomedgpt.core.errors import ConfigError, InputError
from biomedgpt.core.datasets import (
    CaptionRecord, MCQARecord, ProteinQA, ReadStats, read_chebi20, read_mcqa, read_uniprotqa, split_by_key, take,
)
from biomedgpt.training.metrics import (  # noqa: F401 - re-exported: evaluate.py is the public face
    BERT_BASE_UNCASED_SIZE, PROTOCOLS, SCIBERT_SIZE, SCIBERT_VOCAB, TEXT_KEYS, caption_metrics, choose_by_loglik, exact_match, extract_choice,
    load_text_tokenizer, mcqa_accuracy, normalize_answer, option_logprobs, protein_qa_metrics, rouge,
    wordnet_status, wordpieces,
)

log = logging.getLogger(__name__)

RETRIEVAL_MODES = ("on", "off", "only")
PROTEIN_SPLITS = ("all", "train", "test")
MCQA_METHODS = ("generate", "loglik")
MCQA_CANDIDATES = ("letters", "texts")
CAPTION_HEADER = ("SMILES", "ground truth", "output")
PROTEIN_HEADER = ("accession", "question_type", "question", "ground truth", "output")
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
                handle.write("\t".join(_cell(c) for c in row) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


def _cell(value: Any) -> str:
    return " ".join(str(value).split())


def _out_path(out: str | Path | None, prefix: str) -> Path:
    if out is not None:
        return Path(out)
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=".tsv")
    os.close(fd)
    return Path(name)


def _pending(records: Sequence[Any], keys: Sequence[tuple[str, ...]], done: Counter) -> list[int]:
    """Indices of records whose key is not (or not often enough) in the file already."""
    left = Counter(done)
    todo = []
    for i, key in enumerate(keys):
        if left[key] > 0:
            left[key] -= 1
        else:
            todo.append(i)
    return todo


def _select(rows: Sequence[tuple[str, ...]], keys: Sequence[tuple[str, ...]], key_of: Callable) -> list[tuple[str, ...]]:
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


def scoring_tokenizer(vocab: str | Path | None, protocol: str):
    """The checked WordPiece tokenizer of ``protocol`` (SciBERT 31,090 for molt5; bert-base-uncased
    30,522 for openbiomed-v2, whose folder must be given), loaded before any generation starts."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"--protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")
    if protocol == "openbiomed-v2":
        if vocab is None:
            raise InputError("protocol openbiomed-v2 needs --vocab: a folder with bert-base-uncased's vocab.txt "
                             "(30,522 entries; not shipped)")
        return load_text_tokenizer(vocab, expected_size=BERT_BASE_UNCASED_SIZE)
    return load_text_tokenizer(vocab, expected_size=SCIBERT_SIZE)


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
        from biomedgpt.training.lm import load_causal_lm

        lm, tokenizer = load_causal_lm(str(path))
        return lm.eval(), tokenizer
    from biomedgpt.model import load_model

    return load_model(str(model))


def _is_hf_causal_lm(path: Path) -> bool:
    """A folder whose config.json is a transformers config (``model_type``), not a BioMedGPT manifest."""
    import json

    config = path / "config.json"
    if not (path.is_dir() and config.is_file()):
        return False
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and "model_type" in data and "format" not in data


def default_retrieval(model: Any) -> str:
    """'on' when the model was trained with retrieval context (``model.config.retrieval.enabled``), else 'off'."""
    config = getattr(model, "config", None)
    retrieval = getattr(config, "retrieval", None)
    return "on" if getattr(retrieval, "enabled", False) else "off"


def _check_retrieval(retrieval: str | None, model: Any) -> str:
    if retrieval is None:
        if model is None:
            raise InputError("no model given: pass --model, or --retrieval only for the retrieval baseline")
        return default_retrieval(model)
    if retrieval not in RETRIEVAL_MODES:
        raise ConfigError(f"--retrieval {retrieval!r} is not one of {', '.join(RETRIEVAL_MODES)}")
    if retrieval != "only" and model is None:
        raise InputError(f"--retrieval {retrieval} generates with a model: pass --model (or use --retrieval only)")
    return retrieval


def _generate(model: Any, prompts: list[str], *, molecules: list[str] | None = None,
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


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="sample", disable=not enabled or total == 0)


# ------------------------------------------------------------------------------------ captioning
def eval_captioning(model: Any, data_path: str | Path, limit: int | None = None, retrieval: str | None = None,
                    out: str | Path | None = None, batch_size: int = 8, *, vocab: str | Path | None = None,
                    protocol: str = "molt5", progress: bool = True) -> dict[str, Any]:
    """Generate captions for a ChEBI-20 TSV (first ``limit`` rows), append them to ``out``, score them.

    ``out`` (MolT5 format ``SMILES\\tground truth\\toutput``; a temporary file when None) may hold rows
    from an interrupted run: those are not generated again. Only the rows of this data/limit are
    scored. The result is ``caption_metrics``' dict plus ``out``, ``retrieval``, ``generated``, ``skipped_rows``.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    model = resolve_model(model)
    mode = _check_retrieval(retrieval, model)
    tokenizer = scoring_tokenizer(vocab, protocol)  # fail fast, before generating
    stats = ReadStats()
    records: list[CaptionRecord] = list(take(read_chebi20(data_path, stats=stats), limit))
    table = PredictionFile(_out_path(out, "captions-"), CAPTION_HEADER, ("SMILES", "ground truth"))
    keys = [(_cell(r.smiles), _cell(r.description)) for r in records]
    todo = _pending(records, keys, Counter(table.key(row) for row in table.existing()))
    index = default_index("molecule") if mode in ("on", "only") else None
    with _progress(len(todo), "captioning", progress) as bar:
        for start in range(0, len(todo), batch_size):
            batch = [records[i] for i in todo[start:start + batch_size]]
            outputs = _caption_batch(model, batch, mode, index)
            table.append((r.smiles, r.description, o) for r, o in zip(batch, outputs))
            bar.update(len(batch))
    rows = _select(table.existing(), keys, table.key)
    result = caption_metrics([r[1] for r in rows], [r[2] for r in rows], tokenizer=tokenizer, vocab=vocab,
                             protocol=protocol)
    result.update({"out": str(table.path), "retrieval": mode, "generated": len(todo), "skipped_rows": stats.skipped})
    return result


def _structure_batch(model: Any, kind: str, structures: list[str], ids: list[str], questions: list[str],
                     mode: str, index, max_new_tokens: int) -> list[str]:
    """Predictions for one batch of molecules or proteins: the nearest reference's description
    (``only``), or generation from ``model/prompts.structure_prompt`` with (``on``) or without (``off``)
    the retrieval context — the prompt alignment training fits, the row's own CID/accession excluded."""
    if mode == "only":
        return [_nearest_description(kind, query, ident, index) for query, ident in zip(structures, ids)]
    prompts = [_prompt(model, kind, question, query, ident, mode == "on", index)
               for question, query, ident in zip(questions, structures, ids)]
    return _generate_rows(model, prompts, structures, f"{kind}s", ids, max_new_tokens)


def _nearest_description(kind: str, query: str, ident: str, index) -> str:
    """The description of the nearest reference (``model/prompts.retrieve``'s exclusion rule); an input
    the index cannot read gets an empty prediction (logged) instead of killing a long run."""
    try:
        hits = retrieve(kind, query, 1, index=index, query_id=ident)
    except InputError as error:
        log.warning("retrieval skipped for %s: %s", ident, error)
        return ""
    return hits[0].description if hits else ""


def _prompt(model: Any, kind: str, question: str, query: str, ident: str, retrieval: bool, index) -> str:
    """The training prompt for one row, with the ``config.retrieval.k`` nearest references when
    ``retrieval``; an input the index cannot read is asked without context (logged)."""
    try:
        return model_structure_prompt(model, kind, question, structure=query, retrieval=retrieval, index=index,
                                      query_id=ident).text
    except InputError as error:
        log.warning("retrieval skipped for %s: %s", ident, error)
        return model_structure_prompt(model, kind, question, retrieval=False).text


def _caption_batch(model: Any, batch: list[CaptionRecord], mode: str, index) -> list[str]:
    return _structure_batch(model, "molecule", [r.smiles for r in batch], [r.cid for r in batch],
                            [CAPTION_QUESTION] * len(batch), mode, index, MAX_NEW_TOKENS["caption"])


def _generate_rows(model: Any, prompts: list[str], structures: list[str], kind: str, ids: list[str],
                   max_new_tokens: int) -> list[str]:
    """Batched generation; when the batch holds a structure the model cannot encode (RDKit rejects the
    SMILES, a letter is not an amino acid), the rows are redone one by one and the bad row gets an
    empty prediction — it still counts in the scores, it does not stop the run."""
    try:
        return _generate(model, prompts, **{kind: structures}, max_new_tokens=max_new_tokens, one_paragraph=True)
    except InputError:
        pass
    outputs = []
    for prompt, structure, ident in zip(prompts, structures, ids):
        try:
            outputs.extend(_generate(model, [prompt], **{kind: [structure]}, max_new_tokens=max_new_tokens,
                                     one_paragraph=True))
        except InputError as error:
            log.warning("%s: cannot encode the input, empty prediction (%s)", ident, error)
            outputs.append("")
    return outputs


def score_predictions(path: str | Path, *, vocab: str | Path | None = None, protocol: str = "molt5") -> dict[str, Any]:
    """Score a MolT5-format TSV (``SMILES\\tground truth\\toutput``, ``csv.QUOTE_NONE``)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such predictions file")
    with path.open("r", encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = {"ground truth", "output"} - set(reader.fieldnames or ())
        if missing:
            raise InputError(f"{path}: header {reader.fieldnames!r} lacks {sorted(missing)} "
                             "(expected MolT5 format SMILES<TAB>ground truth<TAB>output)")
        refs, preds = [], []
        for number, row in enumerate(reader, 2):
            if row.get("ground truth") is None or row.get("output") is None or None in row:
                raise InputError(f"{path} line {number}: expected 3 tab-separated columns")
            refs.append(row["ground truth"])
            preds.append(row["output"])
    return caption_metrics(refs, preds, tokenizer=scoring_tokenizer(vocab, protocol), protocol=protocol)


# ------------------------------------------------------------------------------------ protein QA
def eval_protein_qa(model: Any, data_path: str | Path, limit: int | None = None, retrieval: str | None = None,
                    out: str | Path | None = None, batch_size: int = 8, *, sequences: str | Path | None = None,
                    split: str = "all", vocab: str | Path | None = None, protocol: str = "molt5", progress: bool = True) -> dict[str, Any]:
    """Answer UniProtQA questions (either layout), append to ``out`` (``accession, question_type,
    question, ground truth, output``), resume, and score with ``protein_qa_metrics``.

    ``--retrieval only`` answers with the description of the nearest reference protein (3-mer cosine
    over the shipped Swiss-Prot train split, leave-self-out, the query's accession excluded).
    ``split`` 'test' / 'train' keeps one side of the 80/20 accession split (seed 0) that the shipped
    protein index was built from; 'test' is the honest choice for the Swiss-Prot PAIR file.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    model = resolve_model(model)
    mode = _check_retrieval(retrieval, model)
    tokenizer = scoring_tokenizer(vocab, protocol)
    if split not in PROTEIN_SPLITS:
        raise ConfigError(f"--split {split!r} is not one of {', '.join(PROTEIN_SPLITS)}")
    stats = ReadStats()
    records: list[ProteinQA] = list(read_uniprotqa(data_path, sequences=sequences, stats=stats))
    if split != "all":
        train, test = split_by_key(records, "accession", test_fraction=0.2, seed=0)
        records = test if split == "test" else train
    records = list(take(records, limit))
    table = PredictionFile(_out_path(out, "protein-qa-"), PROTEIN_HEADER, ("accession", "question", "ground truth"))
    keys = [(_cell(r.accession), _cell(r.question), _cell(r.answer)) for r in records]
    todo = _pending(records, keys, Counter(table.key(row) for row in table.existing()))
    index = default_index("protein") if mode in ("on", "only") else None
    with _progress(len(todo), "protein QA", progress) as bar:
        for start in range(0, len(todo), batch_size):
            batch = [records[i] for i in todo[start:start + batch_size]]
            outputs = _protein_batch(model, batch, mode, index)
            table.append((r.accession, r.question_type, r.question, r.answer, o) for r, o in zip(batch, outputs))
            bar.update(len(batch))
    rows = _select(table.existing(), keys, table.key)
    result = protein_qa_metrics([r[3] for r in rows], [r[4] for r in rows], [r[1] for r in rows],
                                tokenizer=tokenizer, vocab=vocab, protocol=protocol)
    result.update({"out": str(table.path), "retrieval": mode, "generated": len(todo), "skipped_rows": stats.skipped})
    return result


def _protein_batch(model: Any, batch: list[ProteinQA], mode: str, index) -> list[str]:
    return _structure_batch(model, "protein", [r.sequence for r in batch], [r.accession for r in batch],
                            [r.question for r in batch], mode, index, MAX_NEW_TOKENS["protein"])


# ------------------------------------------------------------------------------------------- MCQA
def mcqa_prompt(record: MCQARecord) -> str:
    """The zero-shot question: (abstract), question, lettered options or the label set, in the released
    chat format (``model/conversation.chat_prompt``), ending with ``### Assistant: ``."""
    from biomedgpt.model.conversation import chat_prompt

    parts = []
    if record.context:
        parts.append(f"Context: {record.context}")
    parts.append(f"Question: {record.question}")
    if isinstance(record.options, dict):
        parts.append("Options: " + " ".join(f"{k}. {v}" for k, v in record.options.items()))
        parts.append("Answer with the letter of the correct option.")
    else:
        parts.append(f"Answer with one of: {', '.join(record.options)}.")
    return chat_prompt("\n".join(parts))


def causal_lm_of(model: Any) -> tuple[Any, Any]:
    """(HF causal LM, tokenizer) for log-likelihood scoring: a ``(model, tokenizer)`` pair, or a
    BioMedGPT (its ``.lm`` and ``.tokenizer``)."""
    if isinstance(model, tuple) and len(model) == 2:
        return model
    lm = getattr(model, "lm", None)
    tokenizer = getattr(model, "tokenizer", None)
    if lm is None or tokenizer is None:
        raise InputError(f"--method loglik needs a causal language model with a tokenizer; {type(model).__name__} "
                         "has no .lm/.tokenizer (pass a BioMedGPT or an (HF model, tokenizer) pair)")
    return lm, tokenizer


def eval_mcqa(model: Any, data_path: str | Path, format: str, method: str = "generate", limit: int | None = None,
              batch_size: int = 8, *, reduction: str = "sum", candidates: str = "letters",
              progress: bool = True) -> dict[str, Any]:
    """Accuracy on MedMCQA / PubMedQA / MedQA-USMLE: ``{n, accuracy, by_dataset, method, unanswered}``.

    ``model``: a BioMedGPT (or its name/folder), or an HF causal LM as an ``(LM, tokenizer)`` pair or
    a folder (e.g. the ``run_dir/model`` of ``biomedgpt train qa``).
    ``generate``: the model answers ``mcqa_prompt``; ``extract_choice`` reads the letter or label
    (unreadable answers count as wrong and are counted in ``unanswered``). ``loglik``: the candidate
    with the highest log-probability after the prompt (``reduction`` 'sum' or 'mean' over its tokens);
    ``candidates`` 'letters' scores the option letters — what the prompt asks for and what ``train qa``
    teaches — and 'texts' scores the option texts (the zero-shot habit). PubMedQA always scores its labels.
    """
    if method not in MCQA_METHODS:
        raise ConfigError(f"--method {method!r} is not one of {', '.join(MCQA_METHODS)}")
    if candidates not in MCQA_CANDIDATES:
        raise ConfigError(f"candidates {candidates!r} is not one of {', '.join(MCQA_CANDIDATES)}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    model = resolve_model(model, allow_lm=True)
    if model is None:
        raise InputError("eval mcqa needs --model")
    stats = ReadStats()
    records: list[MCQARecord] = list(take(read_mcqa(data_path, format, stats=stats), limit))
    predictions: list[str | None] = []
    with _progress(len(records), f"MCQA ({method})", progress) as bar:
        if method == "loglik":
            lm, tokenizer = causal_lm_of(model)
            for record in records:
                options = record.options
                if isinstance(options, dict) and candidates == "letters":
                    options = {key: key for key in options}
                predictions.append(choose_by_loglik(lm, tokenizer, mcqa_prompt(record), options, reduction=reduction))
                bar.update(1)
        else:
            for start in range(0, len(records), batch_size):
                batch = records[start:start + batch_size]
                texts = _generate_text(model, [mcqa_prompt(r) for r in batch], MAX_NEW_TOKENS["mcqa"])
                predictions.extend(extract_choice(t, r.options) for t, r in zip(texts, batch))
                bar.update(len(batch))
    result = mcqa_accuracy([r.answer for r in records], predictions, [r.dataset for r in records])
    result.update({"method": method, "unanswered": sum(p is None for p in predictions), "skipped_rows": stats.skipped})
    return result


def _generate_text(model: Any, prompts: list[str], max_new_tokens: int) -> list[str]:
    """Text-only generation: BioMedGPT.generate, or greedy decoding of an ``(LM, tokenizer)`` pair."""
    if isinstance(model, tuple):
        from biomedgpt.training.qa import generate_answers

        lm, tokenizer = model
        return generate_answers(lm, tokenizer, prompts, max_new_tokens, batch_size=len(prompts))
    return _generate(model, prompts, max_new_tokens=max_new_tokens)
