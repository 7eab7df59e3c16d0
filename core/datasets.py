"""The data-set readers of biomedgpt, one per data set: ``for rec in read_chebi20("test.txt", stats=s): ...``.

Why one module: the trainers, the evaluation harness, the shipped reference indexes, the build
scripts and the benchmarks read the same public files (ChEBI-20, the Swiss-Prot PAIR set, PubChemQA,
UniProtQA, MedMCQA, PubMedQA, MedQA-USMLE, raw text) and must agree on how each is parsed. Every
reader is a generator yielding one typed record per row (a 100k-row file never sits in memory
twice) and has two modes:

- skip-and-count (the default): a malformed row is skipped, counted in the ``ReadStats`` the caller
  may pass in (per reason), and one log line at the end names the file and how many rows were
  skipped and why; long training and evaluation runs do not die on one bad row;
- strict (``strict=True``): the first malformed row is an ``InputError`` naming the file and, where
  the format has lines, the line (a reference index must hold exactly the rows of its file).

A file that cannot be opened at all, or that is not the format asked for, is an ``InputError`` naming
the file in both modes. The deterministic key split (``split_accessions``; ``split_by_key``) is here
too: it defines which accessions are the held-out side of a data set, for training, evaluation and
the shipped protein index alike.
"""

from __future__ import annotations

import ast
import csv
import gzip
import json
import logging
import random
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from biomedgpt.core.chem import is_sequence
from biomedgpt.core.errors import InputError

log = logging.getLogger(__name__)

T = TypeVar("T")
_NOTHING = object()

# ChEBI-20 SMILES fields can be longer than csv's default 128 kB field limit in other copies of the set.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
CHEBI20_COLUMNS = ("CID", "SMILES", "description")

MCQA_FORMATS = ("medmcqa", "pubmedqa", "medqa")
PUBMEDQA_LABELS = ("yes", "no", "maybe")


# --------------------------------------------------------------------------------------------- records
@dataclass(frozen=True)
class CaptionRecord:
    """One ChEBI-20 row: PubChem CID, SMILES (backslashes un-escaped), ChEBI description."""

    cid: str
    smiles: str
    description: str


class ProteinRecord(NamedTuple):
    """One Swiss-Prot PAIR entry: ``(accession, sequence, description[, name])``; the description is
    written from the recommended name, family, Pfam domains and EC numbers (UniProt content, CC BY 4.0).
    Also the row type of the protein reference index (``model/retrieval.ProteinIndex``)."""

    accession: str
    sequence: str
    description: str
    name: str | None = None


@dataclass(frozen=True)
class MoleculeQA:
    """One PubChemQA pair. Several SMILES in one record are joined with '.' (a multi-component SMILES)."""

    smiles: str
    question: str
    answer: str
    cid: str | None = None


@dataclass(frozen=True)
class ProteinQA:
    """One UniProtQA pair; ``question_type`` is one of QUESTION_TYPES' keys or 'other'."""

    accession: str
    sequence: str
    question: str
    answer: str
    question_type: str


@dataclass(frozen=True)
class MCQARecord:
    """One multiple-choice question.

    ``options`` is a letter→text dict (MedMCQA, MedQA: ``answer`` is the letter) or a list of labels
    (PubMedQA: ``["yes", "no", "maybe"]``, ``answer`` is the label). ``context`` holds PubMedQA's abstract.
    """

    id: str
    question: str
    options: dict[str, str] | list[str]
    answer: str
    dataset: str
    context: str | None = None


@dataclass(frozen=True)
class TextRecord:
    """One document of a raw text corpus (LM training)."""

    text: str
    id: str | None = None


# ------------------------------------------------------------------------------------------- counting
@dataclass
class ReadStats:
    """How many rows a reader yielded and skipped, with a count per reason; readable after the loop.

    With ``strict`` (set by a reader called with ``strict=True``) the first skip raises ``InputError``
    instead, naming the file and the line when known.
    """

    source: str = ""
    read: int = 0
    skipped: int = 0
    reasons: Counter = field(default_factory=Counter)
    strict: bool = False

    def skip(self, reason: str, line: int | None = None, detail: str | None = None) -> None:
        """Count one malformed row under ``reason`` (or raise, when strict); ``detail`` only goes into
        the strict error message, so that the per-reason counts stay few."""
        if self.strict:
            where = f"{self.source} line {line}" if line is not None else self.source
            raise InputError(f"{where}: {reason}" + (f" ({detail})" if detail else ""))
        self.skipped += 1
        self.reasons[reason] += 1

    def summary(self) -> str:
        why = ", ".join(f"{reason}: {count}" for reason, count in self.reasons.most_common())
        return f"{self.source}: {self.read} records read, {self.skipped} malformed rows skipped" + (f" ({why})" if why else "")

    def report(self) -> None:
        """The end-of-file log line: a warning when rows were skipped, debug otherwise."""
        (log.warning if self.skipped else log.debug)(self.summary())


def _stats(stats: ReadStats | None, path: Path, strict: bool = False) -> ReadStats:
    stats = stats if stats is not None else ReadStats()
    stats.source = str(path)
    stats.strict = strict
    return stats


def _check_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    return path


def _open_text(path: Path):
    """A text handle for ``path``; ``.gz`` files are decompressed on the fly."""
    opener = gzip.open if path.suffix == ".gz" else open
    return opener(path, "rt", encoding="utf-8", newline="")


def _text(value: Any) -> str | None:
    """A non-empty stripped string, or None for anything else (missing, empty, not a string)."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def _json_rows(path: Path, stats: ReadStats) -> Iterator[Any]:
    """Rows of a JSON file (a list, or a dict of parallel lists, or a dict keyed by id) or of JSON Lines.

    A JSONL line that is not valid JSON is skipped and counted; a whole-file JSON syntax error is an
    InputError (nothing can be recovered from it).
    """
    with path.open("r", encoding="utf-8") as handle:
        head = handle.read(1)
        while head and head.isspace():
            head = handle.read(1)
        handle.seek(0)
        if head == "[" or (head == "{" and not _looks_like_jsonl(path)):
            try:
                data = json.load(handle)
            except json.JSONDecodeError as error:
                raise InputError(f"{path}: not valid JSON ({error})") from None
            yield from _rows_of(data, path)
            return
        first: Any = _NOTHING
        lines = 0
        for line in handle:
            if not line.strip():
                continue
            lines += 1
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                stats.skip("line is not JSON")
                continue
            if lines == 1:
                first = row  # held back: a one-line file may be a whole JSON document, not JSONL
                continue
            if first is not _NOTHING:
                yield first
                first = _NOTHING
            yield row
        if first is not _NOTHING:
            yield from (_rows_of(first, path) if lines == 1 else [first])


def _looks_like_jsonl(path: Path) -> bool:
    """True when the first non-empty line is a complete JSON object on its own (JSON Lines)."""
    with path.open("r", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                try:
                    json.loads(line)
                    return True
                except json.JSONDecodeError:
                    return False
    return False


def _rows_of(data: Any, path: Path) -> Iterator[Any]:
    if isinstance(data, list):
        yield from data
        return
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list)]
        if data and len(lists) == len(data) and len({len(v) for v in lists}) == 1 and not _is_record(data):
            # Columnar layout {"field": [v0, v1, ...], ...}: zip the parallel lists into rows.
            keys = list(data)
            for values in zip(*(data[k] for k in keys)):
                yield dict(zip(keys, values))
            return
        if _is_record(data):
            yield data
            return
        for key, value in data.items():
            yield {"__key__": key, **value} if isinstance(value, dict) else {"__key__": key, "__value__": value}
        return
    raise InputError(f"{path}: expected a JSON list or object at the top level, got {type(data).__name__}")


def _is_record(data: dict) -> bool:
    return "question" in data and not isinstance(data.get("question"), list)


# ----------------------------------------------------------------------------------------- ChEBI-20
def read_chebi20(path: str | Path, stats: ReadStats | None = None, *, strict: bool = False) -> Iterator[CaptionRecord]:
    """ChEBI-20 TSV (header naming ``CID``, ``SMILES``, ``description``; ``csv.QUOTE_NONE``; ``.gz`` too), streamed.

    A malformed row (wrong column count, an empty cell) is skipped and counted, or with ``strict`` an
    ``InputError`` naming the file and line. The files escape the backslash of a cis/trans bond as
    ``\\\\``; it is un-escaped (``C/C=C\\\\C`` → ``C/C=C\\C``), the molecule ChEBI meant.
    """
    path = _check_file(path)
    stats = _stats(stats, path, strict)
    with _open_text(path) as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None:
            raise InputError(f"{path}: empty file, expected a ChEBI-20 TSV with header CID, SMILES, description")
        columns = {name.strip(): i for i, name in enumerate(header)}
        if not set(CHEBI20_COLUMNS) <= set(columns):
            raise InputError(f"{path}: header {header!r} lacks CID, SMILES, description (is this a ChEBI-20 TSV?)")
        ic, ism, idesc = (columns[name] for name in CHEBI20_COLUMNS)
        for line_no, row in enumerate(reader, 2):
            if not row or not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                stats.skip(f"{len(row)} columns instead of {len(header)}", line_no)
                continue
            if not (row[ic].strip() and row[ism].strip() and row[idesc].strip()):
                stats.skip("empty CID, SMILES or description", line_no)
                continue
            stats.read += 1
            yield CaptionRecord(cid=row[ic].strip(), smiles=row[ism].strip().replace("\\\\", "\\"),
                                description=row[idesc].strip())
    stats.report()


# ------------------------------------------------------------------------------- Swiss-Prot PAIR
def _list_cell(cell: str) -> list[str]:
    cell = (cell or "").strip()
    if not cell:
        return []
    value = ast.literal_eval(cell)
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def _sentence(text: str) -> str:
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith(".") else text + "."


def read_swissprot_pair(path: str | Path, stats: ReadStats | None = None, *,
                        strict: bool = False) -> Iterator[ProteinRecord]:
    """The PAIR Swiss-Prot CSV (``pid``, ``seq``, ``names``, ``family``, ``pfam_domain``, ``EC``; cells
    are Python list literals; ``.gz`` allowed), one ``ProteinRecord`` per row with a readable
    description built from the recommended name, family, Pfam domains and EC numbers."""
    path = _check_file(path)
    stats = _stats(stats, path, strict)
    with _open_text(path) as handle:
        reader = csv.DictReader(handle)
        for line_no, row in enumerate(reader, 2):
            try:
                accession = row["pid"].strip()
                sequence = _list_cell(row["seq"])[0]
                names = _list_cell(row.get("names", ""))
                family = _list_cell(row.get("family", ""))
                domains = _list_cell(row.get("pfam_domain", ""))
                ec = _list_cell(row.get("EC", ""))
            except (KeyError, IndexError, ValueError, SyntaxError, AttributeError) as error:
                stats.skip("not a PAIR Swiss-Prot row", line_no, detail=str(error))
                continue
            name = None
            parts = []
            if names:
                name = names[0].split("Recommended name:", 1)[-1].strip().split(";")[0].strip() or None
                parts.append(f"{name}." if name else _sentence(names[0]))
            parts.extend(_sentence(f) for f in family)
            if domains:
                parts.append(f"Pfam domains: {'; '.join(domains)}.")
            if ec:
                parts.append(f"EC {', '.join(ec)}.")
            stats.read += 1
            yield ProteinRecord(accession, sequence, " ".join(parts), name)
    stats.report()


# ---------------------------------------------------------------------------------------- PubChemQA
def read_pubchemqa(path: str | Path, stats: ReadStats | None = None, *, strict: bool = False) -> Iterator[MoleculeQA]:
    """PubChemQA JSON/JSONL records ``{"smiles": [...], "question", "answer"}`` (optionally ``cid``).

    Also reads the columnar layout (parallel lists under the same keys). ``smiles`` may be a string.
    """
    path = _check_file(path)
    stats = _stats(stats, path, strict)
    for row in _json_rows(path, stats):
        if not isinstance(row, dict):
            stats.skip("row is not an object")
            continue
        smiles = row.get("smiles")
        if isinstance(smiles, list):
            parts = [s.strip() for s in smiles if isinstance(s, str) and s.strip()]
            smiles = ".".join(parts) if parts and len(parts) == len(smiles) else None
        else:
            smiles = _text(smiles)
        question, answer = _text(row.get("question")), _text(row.get("answer"))
        if not smiles or not question or not answer:
            stats.skip("missing smiles, question or answer")
            continue
        cid = row.get("cid")
        if isinstance(cid, list):
            cid = ",".join(str(c) for c in cid)
        stats.read += 1
        yield MoleculeQA(smiles=smiles.replace("\\\\", "\\"), question=question, answer=answer,
                         cid=None if cid is None else str(cid))
    stats.report()


# ---------------------------------------------------------------------------------------- UniProtQA
QUESTION_TYPES: dict[str, tuple[str, ...]] = {
    # UniProtQA's four templates, keyed by the words that tell them apart.
    "name": ("official name", "names of this protein", "name of this protein"),
    "function": ("function",),
    "location": ("subcellular location", "location"),
    "family": ("family",),
}


def question_type(question: str) -> str:
    """The UniProtQA question type of ``question`` ('name', 'function', 'location', 'family' or 'other')."""
    lowered = question.lower()
    for kind, needles in QUESTION_TYPES.items():
        if any(needle in lowered for needle in needles):
            return kind
    return "other"


def read_uniprotqa(path: str | Path, sequences: str | Path | None = None,
                   stats: ReadStats | None = None, *, strict: bool = False) -> Iterator[ProteinQA]:
    """UniProtQA in either layout.

    * ``{accession: {"sequence": str, "data": [[question, answer], ...]}}`` (``sequences`` not needed);
    * a split file of records ``{"protein_accession": ..., "question", "answer"}`` (JSON list, JSONL or
      parallel lists) plus ``sequences`` = ``sequences.json`` (accession → sequence). When ``sequences``
      is None, a ``sequences.json`` next to the split file is used.

    A pair whose accession has no sequence, or whose sequence is not amino-acid letters, is skipped.
    """
    path = _check_file(path)
    stats = _stats(stats, path, strict)
    seqs: dict[str, str] | None = None
    rows = _json_rows(path, stats)
    for row in rows:
        if not isinstance(row, dict):
            stats.skip("row is not an object")
            continue
        if "__key__" in row:  # accession-keyed layout
            accession, sequence, data = str(row["__key__"]).strip(), _sequence(row.get("sequence")), row.get("data")
            if not sequence:
                stats.skip("missing or invalid sequence")
                continue
            if not isinstance(data, list):
                stats.skip("missing data list")
                continue
            for pair in data:
                if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and _text(pair[0]) and _text(pair[1])):
                    stats.skip("data item is not a [question, answer] pair")
                    continue
                q, a = _text(pair[0]), _text(pair[1])
                stats.read += 1
                yield ProteinQA(accession, sequence, q, a, question_type(q))
            continue
        if seqs is None:
            seqs = _load_sequences(path, sequences)
        accession = row.get("protein_accession", row.get("accession"))
        if isinstance(accession, list):
            accession = accession[0] if len(accession) == 1 else None
        accession = _text(accession)
        q, a = _text(row.get("question")), _text(row.get("answer"))
        if not accession or not q or not a:
            stats.skip("missing protein_accession, question or answer")
            continue
        sequence = _sequence(seqs.get(accession))
        if not sequence:
            stats.skip("accession not in sequences.json")
            continue
        stats.read += 1
        yield ProteinQA(accession, sequence, q, a, question_type(q))
    stats.report()


def _sequence(value: Any) -> str | None:
    return "".join(value.split()).upper() if is_sequence(value) else None


def _load_sequences(split: Path, sequences: str | Path | None) -> dict[str, str]:
    seq_path = Path(sequences) if sequences is not None else split.with_name("sequences.json")
    if not seq_path.is_file():
        raise InputError(f"{split}: split-file layout needs sequences.json (accession → sequence); not found at {seq_path}")
    try:
        data = json.loads(seq_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InputError(f"{seq_path}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise InputError(f"{seq_path}: expected an object accession → sequence")
    return {str(k).strip(): v for k, v in data.items()}


# --------------------------------------------------------------------------------------------- MCQA
def read_medmcqa(path: str | Path, stats: ReadStats | None = None, *, strict: bool = False) -> Iterator[MCQARecord]:
    """MedMCQA, JSON or JSONL, in both public layouts.

    * official release: ``question, opa, opb, opc, opd, cop`` (1-4, or 0-3 in the HF copy), ``id``;
    * MedAgentsBench copy: ``question, options {"A".."D"}, answer_idx, realidx``.
    Multi-answer rows (``choice_type == "multi"``) are kept; the key is still the single ``cop``.
    """
    path = _check_file(path)
    stats = _stats(stats, path, strict)
    for number, row in enumerate(_json_rows(path, stats)):
        record = _medmcqa_record(row, number)
        if record is None:
            stats.skip("missing question, options or a valid answer")
            continue
        stats.read += 1
        yield record
    stats.report()


def _medmcqa_record(row: Any, number: int) -> MCQARecord | None:
    if not isinstance(row, dict) or not _text(row.get("question")):
        return None
    if "options" in row:
        options, answer = _letter_options(row.get("options")), _text(row.get("answer_idx"))
    else:
        texts = [_text(row.get(k)) for k in ("opa", "opb", "opc", "opd")]
        if any(t is None for t in texts):
            return None
        options = dict(zip("ABCD", texts))
        cop = row.get("cop")
        if isinstance(cop, str) and cop.strip().isdigit():
            cop = int(cop)
        # The official JSON uses 1-4; the Hugging Face copy 0-3. 0 only occurs in the latter.
        answer = None
        if isinstance(cop, int) and not isinstance(cop, bool):
            answer = "ABCD"[cop - 1] if 1 <= cop <= 4 else ("A" if cop == 0 else None)
    if not options or answer not in options:
        return None
    rid = _text(row.get("id")) or _text(row.get("realidx")) or str(number)
    return MCQARecord(id=rid, question=_text(row["question"]), options=options, answer=answer, dataset="medmcqa")


def _letter_options(value: Any) -> dict[str, str] | None:
    if isinstance(value, dict):
        options = {str(k).strip().upper(): _text(v) for k, v in value.items()}
    elif isinstance(value, list):
        options = {chr(ord("A") + i): _text(v) for i, v in enumerate(value)}
    else:
        return None
    if not options or any(v is None for v in options.values()):
        return None
    return options


def read_medqa(path: str | Path, stats: ReadStats | None = None, *, strict: bool = False) -> Iterator[MCQARecord]:
    """MedQA-USMLE JSONL: ``question``, ``options`` {"A".."D"/"E"}, ``answer_idx`` (else the answer text)."""
    path = _check_file(path)
    stats = _stats(stats, path, strict)
    for number, row in enumerate(_json_rows(path, stats)):
        if not isinstance(row, dict) or not _text(row.get("question")):
            stats.skip("missing question")
            continue
        options = _letter_options(row.get("options"))
        answer = _text(row.get("answer_idx"))
        if options and answer is None and _text(row.get("answer")):
            answer = next((k for k, v in options.items() if v == _text(row.get("answer"))), None)
        if not options or answer not in options:
            stats.skip("missing options or answer not among them")
            continue
        stats.read += 1
        rid = _text(row.get("realidx")) or _text(row.get("id")) or str(number)
        yield MCQARecord(id=rid, question=_text(row["question"]), options=options, answer=answer, dataset="medqa")
    stats.report()


def read_pubmedqa(path: str | Path, ground_truth: str | Path | None = None,
                  stats: ReadStats | None = None, *, strict: bool = False) -> Iterator[MCQARecord]:
    """PubMedQA ``ori_pqal.json`` ({PMID: {QUESTION, CONTEXTS, final_decision, ...}}).

    With ``ground_truth`` (``test_ground_truth.json``, {PMID: label}) only those PMIDs are read and
    their label is the answer (the official test split); without it every item is read with its
    ``final_decision``. ``context`` is the abstract (CONTEXTS joined), the reasoning-required setting.
    """
    path = _check_file(path)
    stats = _stats(stats, path, strict)
    truth: dict[str, str] | None = None
    if ground_truth is not None:
        gt_path = _check_file(ground_truth)
        try:
            truth = {str(k): str(v).strip().lower() for k, v in json.loads(gt_path.read_text(encoding="utf-8")).items()}
        except (json.JSONDecodeError, AttributeError) as error:
            raise InputError(f"{gt_path}: expected a JSON object PMID → yes/no/maybe ({error})") from None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected PubMedQA's object PMID → item, got {type(data).__name__}")
    for pmid, item in data.items():
        if truth is not None and pmid not in truth:
            continue
        if not isinstance(item, dict) or not _text(item.get("QUESTION")):
            stats.skip("missing QUESTION")
            continue
        label = truth[pmid] if truth is not None else str(item.get("final_decision", "")).strip().lower()
        if label not in PUBMEDQA_LABELS:
            stats.skip("label is not yes/no/maybe")
            continue
        contexts = item.get("CONTEXTS")
        context = " ".join(c.strip() for c in contexts if isinstance(c, str)) if isinstance(contexts, list) else None
        stats.read += 1
        yield MCQARecord(id=str(pmid), question=_text(item["QUESTION"]), options=list(PUBMEDQA_LABELS),
                         answer=label, dataset="pubmedqa", context=context or None)
    stats.report()


def read_mcqa(path: str | Path, format: str, stats: ReadStats | None = None,
              ground_truth: str | Path | None = None, *, strict: bool = False) -> Iterator[MCQARecord]:
    """Dispatch on ``format`` ('medmcqa', 'pubmedqa', 'medqa'). For PubMedQA, a
    ``test_ground_truth.json`` next to the file is used when ``ground_truth`` is None."""
    if format == "medmcqa":
        return read_medmcqa(path, stats=stats, strict=strict)
    if format == "medqa":
        return read_medqa(path, stats=stats, strict=strict)
    if format == "pubmedqa":
        if ground_truth is None:
            candidate = Path(path).with_name("test_ground_truth.json")
            ground_truth = candidate if candidate.is_file() else None
        return read_pubmedqa(path, ground_truth=ground_truth, stats=stats, strict=strict)
    raise InputError(f"MCQA format {format!r} is not one of {', '.join(MCQA_FORMATS)}")


# --------------------------------------------------------------------------------------- raw text
def read_text_corpus(path: str | Path, field: str = "text", stats: ReadStats | None = None, *,
                     strict: bool = False) -> Iterator[TextRecord]:
    """A raw text corpus for LM training.

    ``.jsonl``/``.json`` files: one object per line with a ``field`` (default ``text``; when absent,
    ``title`` and ``abstract`` are joined, the PubMed layout). Anything else: plain text, one document
    per blank-line-separated paragraph block.
    """
    path = _check_file(path)
    stats = _stats(stats, path, strict)
    if path.suffix.lower() in (".jsonl", ".json"):
        for number, row in enumerate(_json_rows(path, stats)):
            text = None
            if isinstance(row, dict):
                text = _text(row.get(field))
                if text is None and (row.get("title") or row.get("abstract")):
                    text = _text(" ".join(str(row.get(k) or "") for k in ("title", "abstract")))
            elif isinstance(row, str):
                text = _text(row)
            if text is None:
                stats.skip(f"no {field!r} text")
                continue
            stats.read += 1
            rid = row.get("id", row.get("pmid")) if isinstance(row, dict) else None
            yield TextRecord(text=text, id=None if rid is None else str(rid))
    else:
        block: list[str] = []
        with path.open("r", encoding="utf-8", errors="replace") as handle:
            for line in [*handle, "\n"]:
                if line.strip():
                    block.append(line.strip())
                elif block:
                    stats.read += 1
                    yield TextRecord(text=" ".join(block))
                    block = []
    stats.report()


# ------------------------------------------------------------------------------------------- splits
def split_accessions(accessions: Iterable[str], test_fraction: float = 0.2, seed: int = 0) -> tuple[list[str], list[str]]:
    """Deterministic train/test split by accession (or any key): ``(train, test)``, each sorted.

    Unique accessions are sorted, shuffled with ``random.Random(seed)`` and the first
    ``round(n * test_fraction)`` go to test, so the split does not depend on input order. With 0.2 and
    seed 0 it is the split whose train side the shipped protein index holds.
    """
    if not 0.0 <= test_fraction <= 1.0:
        raise InputError(f"test_fraction must be within [0, 1], got {test_fraction}")
    unique = sorted({str(a) for a in accessions})
    shuffled = list(unique)
    random.Random(seed).shuffle(shuffled)
    n_test = int(round(len(unique) * test_fraction))
    test = set(shuffled[:n_test])
    return [a for a in unique if a not in test], sorted(test)


def split_by_key(records: Iterable[T], key: Callable[[T], str] | str, test_fraction: float = 0.2,
                 seed: int = 0) -> tuple[list[T], list[T]]:
    """(train, test) with every record of one key on the same side (e.g. 80/20 by accession, seed 0),
    by ``split_accessions``: a protein in the shipped retrieval index is never on the evaluation side."""
    get = (lambda r: getattr(r, key)) if isinstance(key, str) else key
    records = list(records)
    _, test_keys = split_accessions([str(get(r)) for r in records], test_fraction=test_fraction, seed=seed)
    test_set = set(test_keys)
    train = [r for r in records if str(get(r)) not in test_set]
    test = [r for r in records if str(get(r)) in test_set]
    return train, test


def take(records: Iterable[T], limit: int | None) -> Iterator[T]:
    """The first ``limit`` records (all when None); stops the underlying reader early."""
    for i, record in enumerate(records):
        if limit is not None and i >= limit:
            return
        yield record


__all__: Sequence[str] = (
    "CaptionRecord", "ProteinRecord", "MoleculeQA", "ProteinQA", "MCQARecord", "TextRecord", "ReadStats",
    "QUESTION_TYPES", "question_type", "read_chebi20", "read_swissprot_pair", "read_pubchemqa", "read_uniprotqa",
    "read_medmcqa", "read_medqa", "read_pubmedqa", "read_mcqa", "read_text_corpus", "split_accessions",
    "split_by_key", "take", "MCQA_FORMATS", "PUBMEDQA_LABELS", "CHEBI20_COLUMNS",
)
