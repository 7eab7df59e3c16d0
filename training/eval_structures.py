"""Evaluation of questions about one structure: ``eval_captioning(model, "chebi20/test.txt", retrieval="only")``,
``eval_protein_qa(...)``, ``score_predictions("preds.tsv")`` → metrics dicts.

* captioning (ChEBI-20): ``--retrieval only`` copies the description of the nearest reference molecule
  (Morgan/Tanimoto over the shipped ChEBI-20 reference) — the baseline any model must beat; ``on`` puts
  the retrieval context block in the prompt; ``off`` does not; the default is how the model was trained
  (``model.config.retrieval.enabled``, off when absent). The shipped reference holds every ChEBI-20 row,
  so an evaluation **holds out every row it evaluates** (``model/prompts.held_out_ids``: their CIDs and
  any reference of the same InChIKey, passed as ``exclude_ids``): on the first 500 test rows the
  reference is validation plus test rows 501.., exactly the molecules ``align-mini-lora-cpu`` trains on
  (its ``data.eval_slice``) and may retrieve;
* protein QA (UniProtQA, either layout): the same, plus exact match overall and per question type, and
  ``--retrieval alignment``: *alignment transfer*, the baseline of issue 15 — each question is answered with
  the answer the best phmmer homologue (E-value <= ``protein_max_evalue``) in the shipped Swiss-Prot
  reference gives to the same question in the training rows, or with the training rows' most frequent
  answer to it when no homologue passes (``AlignmentTransfer``).

Every prompt is ``model/prompts.structure_prompt``'s (the one alignment training fits), predictions go
to a MolT5-format TSV that resumes (``training/eval_common.PredictionFile``), and scoring follows the
published protocol (``training/metrics.py``).
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from collections.abc import Collection
from pathlib import Path
from typing import Any

from biomedgpt.core.datasets import CaptionRecord, ProteinQA, ReadStats, read_chebi20, read_uniprotqa, split_by_key, take
from biomedgpt.core.errors import ConfigError, InputError
from biomedgpt.model.conversation import CAPTION_QUESTION
from biomedgpt.model.prompts import default_index, held_out_ids, model_structure_prompt, retrieve
from biomedgpt.training.eval_common import (
    MAX_NEW_TOKENS, PredictionFile, cell, generate_batch, out_path, predict_resumable, resolve_model,
)
from biomedgpt.training.metrics import (
    BERT_BASE_UNCASED_SIZE, PROTOCOLS, SCIBERT_SIZE, caption_metrics, load_text_tokenizer, protein_qa_metrics,
)

log = logging.getLogger(__name__)

RETRIEVAL_MODES = ("on", "off", "only")
#: protein QA also has the alignment-transfer baseline (no model)
PROTEIN_RETRIEVAL_MODES = RETRIEVAL_MODES + ("alignment",)
PROTEIN_SPLITS = ("all", "train", "test")
CAPTION_HEADER = ("SMILES", "ground truth", "output")
PROTEIN_HEADER = ("accession", "question_type", "question", "ground truth", "output")


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


# ------------------------------------------------------------------------------------ captioning
def eval_captioning(model: Any, data_path: str | Path, limit: int | None = None, retrieval: str | None = None,
                    out: str | Path | None = None, batch_size: int = 8, *, vocab: str | Path | None = None,
                    protocol: str = "molt5", progress: bool = True) -> dict[str, Any]:
    """Generate captions for a ChEBI-20 TSV (first ``limit`` rows), append them to ``out``, score them.

    ``out`` (MolT5 format ``SMILES\\tground truth\\toutput``; a temporary file when None) may hold rows
    from an interrupted run: those are not generated again. Only the rows of this data/limit are
    scored. The evaluated rows are held out of the retrieval reference (module doc). The result is
    ``caption_metrics``' dict plus ``out``, ``retrieval``, ``generated``, ``skipped_rows`` and, with
    retrieval, ``reference_rows`` (the references left to retrieve from).
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    model = resolve_model(model)
    mode = _check_retrieval(retrieval, model)
    tokenizer = scoring_tokenizer(vocab, protocol)  # fail fast, before generating
    stats = ReadStats()
    records: list[CaptionRecord] = list(take(read_chebi20(data_path, stats=stats), limit))
    table = PredictionFile(out_path(out, "captions-"), CAPTION_HEADER, ("SMILES", "ground truth"))
    keys = [(cell(r.smiles), cell(r.description)) for r in records]
    index = default_index("molecule") if mode in ("on", "only") else None
    # every evaluated row is held out of the reference (module doc), whatever rows are already predicted
    held_out = held_out_ids("molecule", [(r.cid, r.smiles) for r in records], index=index) if index else frozenset()
    rows, generated = predict_resumable(table, records, keys, batch_size=batch_size, desc="captioning",
                                        progress=progress,
                                        predict=lambda batch: _caption_batch(model, batch, mode, index, held_out),
                                        row=lambda r, o: (r.smiles, r.description, o))
    result = caption_metrics([r[1] for r in rows], [r[2] for r in rows], tokenizer=tokenizer, vocab=vocab,
                             protocol=protocol)
    result.update({"out": str(table.path), "retrieval": mode, "generated": generated, "skipped_rows": stats.skipped})
    if index is not None:
        result["reference_rows"] = sum(1 for r in index.records if r.id not in held_out)
    return result


def _structure_batch(model: Any, kind: str, structures: list[str], ids: list[str], questions: list[str],
                     mode: str, index, max_new_tokens: int, exclude_ids: Collection[str] = ()) -> list[str]:
    """Predictions for one batch of molecules or proteins: the nearest reference's description
    (``only``), or generation from ``model/prompts.structure_prompt`` with (``on``) or without (``off``)
    the retrieval context — the prompt alignment training fits, the row's own CID/accession and
    ``exclude_ids`` (the held-out rows) excluded."""
    if mode == "only":
        return [_nearest_description(kind, query, ident, index, exclude_ids) for query, ident in zip(structures, ids)]
    prompts = [_prompt(model, kind, question, query, ident, mode == "on", index, exclude_ids)
               for question, query, ident in zip(questions, structures, ids)]
    return _generate_rows(model, prompts, structures, f"{kind}s", ids, max_new_tokens)


def _nearest_description(kind: str, query: str, ident: str, index, exclude_ids: Collection[str] = ()) -> str:
    """The description of the nearest reference (``model/prompts.retrieve``'s exclusion rule); an input
    the index cannot read gets an empty prediction (logged) instead of killing a long run."""
    try:
        hits = retrieve(kind, query, 1, index=index, query_id=ident, exclude_ids=exclude_ids)
    except InputError as error:
        log.warning("retrieval skipped for %s: %s", ident, error)
        return ""
    return hits[0].description if hits else ""


def _prompt(model: Any, kind: str, question: str, query: str, ident: str, retrieval: bool, index,
            exclude_ids: Collection[str] = ()) -> str:
    """The training prompt for one row, with the ``config.retrieval.k`` nearest references when
    ``retrieval``; an input the index cannot read is asked without context (logged)."""
    try:
        return model_structure_prompt(model, kind, question, structure=query, retrieval=retrieval, index=index,
                                      query_id=ident, exclude_ids=exclude_ids).text
    except InputError as error:
        log.warning("retrieval skipped for %s: %s", ident, error)
        return model_structure_prompt(model, kind, question, retrieval=False).text


def _caption_batch(model: Any, batch: list[CaptionRecord], mode: str, index,
                   exclude_ids: Collection[str] = ()) -> list[str]:
    return _structure_batch(model, "molecule", [r.smiles for r in batch], [r.cid for r in batch],
                            [CAPTION_QUESTION] * len(batch), mode, index, MAX_NEW_TOKENS["caption"], exclude_ids)


def _generate_rows(model: Any, prompts: list[str], structures: list[str], kind: str, ids: list[str],
                   max_new_tokens: int) -> list[str]:
    """Batched generation; when the batch holds a structure the model cannot encode (RDKit rejects the
    SMILES, a letter is not an amino acid), the rows are redone one by one and the bad row gets an
    empty prediction — it still counts in the scores, it does not stop the run."""
    try:
        return generate_batch(model, prompts, **{kind: structures}, max_new_tokens=max_new_tokens, one_paragraph=True)
    except InputError:
        pass
    outputs = []
    for prompt, structure, ident in zip(prompts, structures, ids):
        try:
            outputs.extend(generate_batch(model, [prompt], **{kind: [structure]}, max_new_tokens=max_new_tokens,
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
    over the shipped Swiss-Prot train split, leave-self-out, the query's accession excluded);
    ``--retrieval alignment`` with alignment transfer (``AlignmentTransfer``; no model).
    ``split`` 'test' / 'train' keeps one side of the 80/20 accession split (seed 0) that the shipped
    protein index was built from; 'test' is the honest choice for the Swiss-Prot PAIR file.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    if retrieval is not None and retrieval not in PROTEIN_RETRIEVAL_MODES:
        raise ConfigError(f"--retrieval {retrieval!r} is not one of {', '.join(PROTEIN_RETRIEVAL_MODES)}")
    if retrieval == "alignment":
        mode = retrieval  # a baseline: no model is loaded
    else:
        model = resolve_model(model)
        mode = _check_retrieval(retrieval, model)
    tokenizer = scoring_tokenizer(vocab, protocol)
    if split not in PROTEIN_SPLITS:
        raise ConfigError(f"--split {split!r} is not one of {', '.join(PROTEIN_SPLITS)}")
    stats = ReadStats()
    records: list[ProteinQA] = list(read_uniprotqa(data_path, sequences=sequences, stats=stats))
    train, test = split_by_key(records, "accession", test_fraction=0.2, seed=0)
    if split != "all":
        records = test if split == "test" else train
    records = list(take(records, limit))
    table = PredictionFile(out_path(out, "protein-qa-"), PROTEIN_HEADER, ("accession", "question", "ground truth"))
    keys = [(cell(r.accession), cell(r.question), cell(r.answer)) for r in records]
    if mode == "alignment":
        transfer = AlignmentTransfer(train)
        predict = transfer.predict_batch
    else:
        index = default_index("protein") if mode in ("on", "only") else None
        predict = lambda batch: _protein_batch(model, batch, mode, index)  # noqa: E731
    rows, generated = predict_resumable(table, records, keys, batch_size=batch_size, desc="protein QA",
                                        progress=progress, predict=predict,
                                        row=lambda r, o: (r.accession, r.question_type, r.question, r.answer, o))
    result = protein_qa_metrics([r[3] for r in rows], [r[4] for r in rows], [r[1] for r in rows],
                                tokenizer=tokenizer, vocab=vocab, protocol=protocol)
    result.update({"out": str(table.path), "retrieval": mode, "generated": generated, "skipped_rows": stats.skipped})
    if mode == "alignment":  # how many answers came from a homologue (this run's new rows only)
        result.update({"max_evalue": transfer.max_evalue, "transferred": transfer.transferred,
                       "most_frequent_fallback": transfer.fallback})
    return result


def _protein_batch(model: Any, batch: list[ProteinQA], mode: str, index) -> list[str]:
    return _structure_batch(model, "protein", [r.sequence for r in batch], [r.accession for r in batch],
                            [r.question for r in batch], mode, index, MAX_NEW_TOKENS["protein"])


class AlignmentTransfer:
    """The alignment-transfer baseline for protein QA (issue 15): answer a question about a protein with the
    answer its best homologue gives to the same question.

    Why: annotation transfer from a significant homologue is what biologists do first, so it is the bar a
    protein-text model has to clear; the 3-mer ``--retrieval only`` baseline copies a neighbour's whole
    description even when the neighbour is unrelated. Homologues are phmmer hits (``model/alignment``) in
    the shipped Swiss-Prot reference (the 80 % train split) with E-value <= ``max_evalue`` (default: the
    ``protein_max_evalue`` setting); answers come from ``train`` (the training rows of the same data, so the
    test split never answers itself); the query's own accession and identical sequences are left out. A
    question no homologue answers gets the most frequent training answer to that question.
    """

    def __init__(self, train: list[ProteinQA], *, max_evalue: float | None = None, k: int = 10) -> None:
        from biomedgpt.core.settings import get_settings
        from biomedgpt.model.alignment import shipped_database

        self.max_evalue = get_settings().protein_max_evalue if max_evalue is None else max_evalue
        self.k = k
        self.database = shipped_database()
        self.answers: dict[str, dict[str, str]] = {}
        counts: dict[str, Counter] = {}
        for row in train:
            self.answers.setdefault(row.accession, {}).setdefault(row.question, row.answer)
            counts.setdefault(row.question, Counter())[row.answer] += 1
        self.most_frequent = {question: counter.most_common(1)[0][0] for question, counter in counts.items()}
        self._hits: dict[tuple[str, str], list] = {}
        self.transferred = self.fallback = 0

    def homologues(self, accession: str, sequence: str) -> list:
        """The passing phmmer hits for one protein, best first (cached: a protein has several questions)."""
        from biomedgpt.model.alignment import search_homologues

        key = (accession, sequence)
        if key not in self._hits:
            try:
                hits = search_homologues(sequence, self.k, databases=[self.database], exclude_ids=[accession],
                                         leave_self_out=True)
            except InputError as error:
                log.warning("alignment skipped for %s: %s", accession, error)
                hits = []
            self._hits[key] = [h for h in hits if h.evalue <= self.max_evalue]
        return self._hits[key]

    def predict(self, row: ProteinQA) -> str:
        for hit in self.homologues(row.accession, row.sequence):
            answer = self.answers.get(hit.id, {}).get(row.question)
            if answer:
                self.transferred += 1
                return answer
        self.fallback += 1
        return self.most_frequent.get(row.question, "")

    def predict_batch(self, batch: list[ProteinQA]) -> list[str]:
        return [self.predict(row) for row in batch]
