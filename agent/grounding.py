"""Grounding checks for a chat model's answer: ``ungrounded_sentences(text, evidence)``.

Why: a chat model, small or large, can write a fluent sentence no record supports ("logP(m) = 1.618…"), or
cite a real record for a number it made up. Citation labels alone do not catch either. So every sentence of
an answer written by a chat model is read here:

- A sentence **states a fact** when it holds a number, an entity name or identifier (a name from the records
  or the question, a capitalised name inside the sentence, a formula, SMILES, InChIKey, accession, CID or PMID)
  or a property word (weight, logP, function, binds, disease, …). Sentences about the conversation itself
  ("I can look that up", "You can ask …", "Here is what the records say about …") and questions are not facts
  unless they hold a number.
- A sentence that cites only labels no tool returned is never grounded, whatever it says.
- A sentence that states a fact is **grounded** when it cites (``[LABEL]``) a record that a tool returned this turn or
  earlier in the session, and every number in it (outside the brackets and code spans) equals a value of a
  cited record after rounding that value to the digits written (``180.2`` and ``180`` both match 180.159;
  ``180.3`` does not). A percentage may also match a fraction (``93%`` ~ 0.93).

Everything else is reported, not removed: the answer opens with one line that quotes the unchecked claims
(``unchecked_note``), and ``AskResult.ungrounded`` lists them. The composed (router) answer is grounded by
construction and is not checked here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from biomedgpt.agent.answer import cited_labels
from biomedgpt.agent.state import ARTIFACT_KINDS
from biomedgpt.tools.records import RECORD_TYPES

#: A number as written: ``180.16``, ``-0.5``, ``86,943``, ``1e-5`` is read as 1 and 5 (rare in answers).
NUMBER = re.compile(r"(?<![\w.,\-\u2212])[-\u2212]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\w]|\.\d)")
_BRACKETED = re.compile(r"\[[^\[\]\n]{1,120}\]")
_CODE = re.compile(r"`[^`\n]*`")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"\u201d)]?\s+(?=[\[A-Z0-9\"\u201c(*`_])")
_LIST_MARKER = re.compile(r"^\s*(?:[-*\u2022+]|\d{1,2}[.)]|#{1,6})\s+")
_ONLY_CITATIONS = re.compile(r"^\s*(?:\[[^\[\]\n]{1,120}\]\s*[.;,]?\s*)+$")
_IDENTIFIER = re.compile(
    r"\b[A-Z]{14}-[A-Z]{10}-[A-Z]\b"  # InChIKey
    r"|\b(?:CID|PMID|PubChem CID)\s*:?\s*\d+"
    r"|\b(?:[OPQ][0-9][A-Z0-9]{3}[0-9]|[A-NR-Z][0-9](?:[A-Z][A-Z0-9]{2}[0-9]){1,2})\b"  # UniProt accession
    r"|\b(?=[A-Z][a-z]?\d)(?:[A-Z][a-z]?\d*){2,}\b"  # a formula with counts: C9H8O4, H2O
    r"|(?<![\w])(?=[^\s]*[=#@()\[\]])(?=[^\s]*[A-Za-z])[A-Za-z0-9@+\-\[\]()\\/=#%.]{5,}"  # SMILES-like
)
_PROPERTY = re.compile(
    r"\b(?:weigh\w*|mass|formula|log ?p|xlogp\w*|tpsa|polar surface|donors?|acceptors?|rotatable|rings?|"
    r"charged?|melting|boiling|solubl\w*|solubility|density|pka|toxic\w*|half-life|functions?|genes?|organisms?|"
    r"locat\w*|locali[sz]\w*|famil(?:y|ies)|diseases?|disorders?|structures?|sequences?|length|residues?|"
    r"amino acids?|bind\w*|inhibit\w*|activat\w*|cataly[sz]\w*|express\w*|metaboli\w*|receptors?|enzymes?|"
    r"kinases?|pathways?|indicat\w*|treat\w*|mechanism|dos(?:e|es|age)|approved|side effects?|synonyms?|iupac|"
    r"inchi\w*|smiles|similar\w*|tanimoto|atoms?|bonds?|isomers?|derivatives?|causes?|associated|encod\w*)\b",
    re.I)
#: Capitalised words that are not entity names (sources, units, the assistant's own vocabulary).
_NOT_NAMES = frozenset("""I I'm I'll I've I'd PubChem UniProt UniProtKB RDKit BioMedGPT ChEBI ChEBI-20 PubMed Swiss-Prot
TrEMBL SMILES InChI InChIKey IUPAC CID PMID TPSA GO PDB NCBI Lipinski Lipinski's Note Sources Source Also OK
Tanimoto Morgan Crippen XLogP XLogP3 DNA RNA English Hello Hi Thanks Sorry Yes No The This That These It Its""".split())
_ABOUT_THE_CONVERSATION = re.compile(r"^(?:I|I'm|I'll|I've|I'd|I am|You|You're|Your|Please|Sorry|Hello|Hi|Thanks|"
                                     r"Thank you|Let me|Feel free|Ask|If you|Here(?: is|'s| are) what)\b", re.I)


@dataclass
class Evidence:
    """What one cited record holds: its numbers (as written) and the names it gives."""

    numbers: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)

    def to_dict(self) -> dict[str, list[str]]:
        return {"numbers": sorted(self.numbers), "names": sorted(self.names)}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> Evidence:
        raw = raw or {}
        return cls(numbers=set(raw.get("numbers") or []), names=set(raw.get("names") or []))

    def merge(self, other: Evidence) -> Evidence:
        return Evidence(self.numbers | other.numbers, self.names | other.names)


def numbers_in(text: str) -> list[str]:
    """The numbers written in ``text`` outside citations and code spans, as written."""
    text = _CODE.sub(" ", _BRACKETED.sub(" ", text or ""))
    return [m.group(0) for m in NUMBER.finditer(text)]


def _walk(value: Any, numbers: set[str]) -> None:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return
        numbers.add(repr(value))
    elif isinstance(value, str):
        numbers.update(m.group(0) for m in NUMBER.finditer(value))
    elif isinstance(value, Mapping):
        for item in value.values():
            _walk(item, numbers)
    elif isinstance(value, (list, tuple, set)):
        for item in value:
            _walk(item, numbers)


def _record_names(record: Any) -> set[str]:
    names: set[str] = set()
    for attribute in ("title", "iupac_name", "protein_name", "entry_name", "name", "organism"):
        value = getattr(record, attribute, None)
        if isinstance(value, str) and value and not value.startswith(("PubChem CID", "`")):
            names.add(value)
    for attribute in ("synonyms", "gene_names"):
        names.update(v for v in (getattr(record, attribute, None) or [])[:8] if isinstance(v, str))
    return {n for n in names if 2 <= len(n) <= 80}


def evidence_from_state(state: Mapping[str, Any]) -> dict[str, Evidence]:
    """label → :class:`Evidence` for every record of the current turn (the typed artifact lists)."""
    found: dict[str, Evidence] = {}
    for kind in ARTIFACT_KINDS:
        record_type = RECORD_TYPES.get(kind)
        for raw in state.get(kind) or []:
            if record_type is None or not isinstance(raw, Mapping):
                continue
            record = record_type.model_validate(raw)
            numbers: set[str] = set()
            _walk(dict(raw), numbers)
            try:
                _walk(record.chat_text(), numbers)
            except Exception:  # noqa: BLE001 - the raw values are enough
                pass
            label = record.label
            found[label] = found.get(label, Evidence()).merge(Evidence(numbers, _record_names(record)))
    return found


def evidence_from_text(text: str) -> dict[str, Evidence]:
    """label → numbers of the sentences of a composed (grounded by construction) text that cite it: values the
    router derived from records (rankings, a Tanimoto similarity) become citable with the same label."""
    found: dict[str, Evidence] = {}
    for sentence in split_sentences(text):
        labels = cited_labels(sentence)
        numbers = set(numbers_in(sentence))
        for label in labels:
            found[label] = found.get(label, Evidence()).merge(Evidence(numbers))
    return found


def split_sentences(text: str) -> list[str]:
    """The sentences of an answer: lines (list items, table rows) split at sentence ends; a piece that is only
    citations (``… 180.16 g/mol. [PubChem CID 2244]``) belongs to the sentence before it."""
    out: list[str] = []
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or re.fullmatch(r"\|?[\s:|-]+\|?", line):
            continue
        pieces = [p.strip() for p in _SENTENCE_END.split(line) if p.strip()]
        for piece in pieces:
            if out and _ONLY_CITATIONS.match(piece) and out[-1] is not None:
                out[-1] = f"{out[-1]} {piece}"
            else:
                out.append(piece)
    return out


def _plain(sentence: str) -> str:
    return _CODE.sub(" ", _BRACKETED.sub(" ", _LIST_MARKER.sub("", sentence))).strip()


def _capitalised_names(plain: str) -> list[str]:
    """Capitalised words inside a sentence (not its first word, nor one after a colon or an opening quote)."""
    names = []
    for index, match in enumerate(re.finditer(r"[A-Za-z][\w'\-]*", plain)):
        word = match.group(0)
        if index == 0 or not word[0].isupper() or word in _NOT_NAMES:
            continue
        if plain[: match.start()].rstrip().endswith((":", ";", "(", '"', "\u201c", "\u2013", "\u2014")):
            continue
        names.append(word)
    return names


def states_fact(sentence: str, names: Iterable[str] = ()) -> bool:
    """Whether ``sentence`` states a fact (see the module docstring)."""
    plain = _plain(sentence)
    if not plain or not re.search(r"[A-Za-z0-9]", plain):
        return False
    if numbers_in(plain):
        return True
    if _ABOUT_THE_CONVERSATION.match(plain) or plain.rstrip().endswith("?"):
        return False
    if _CODE.search(sentence) or _IDENTIFIER.search(plain) or _PROPERTY.search(plain):
        return True
    lowered = plain.lower()
    for name in names:
        if name and re.search(rf"(?<![\w]){re.escape(name.lower())}(?![\w])", lowered):
            return True
    return bool(_capitalised_names(plain))


def _matches(written: str, values: Iterable[str]) -> bool:
    text = written.replace(",", "").replace("\u2212", "-")
    try:
        number = float(text)
    except ValueError:
        return False
    decimals = len(text.split(".", 1)[1]) if "." in text else 0
    tolerance = 0.5 * 10 ** -decimals + 1e-9
    for raw in values:
        try:
            value = float(str(raw).replace(",", "").replace("\u2212", "-"))
        except ValueError:
            continue
        if abs(value - number) <= tolerance * (1 + 1e-9):
            return True
    return False


def _percent(values: Iterable[str]) -> list[str]:
    out = []
    for raw in values:
        try:
            out.append(repr(float(str(raw).replace(",", "")) * 100))
        except ValueError:
            continue
    return out


def check_sentence(sentence: str, evidence: Mapping[str, Evidence], names: Iterable[str] = ()) -> str | None:
    """``None`` when the sentence is grounded or states no fact, else why it is not (a short reason)."""
    labels = cited_labels(sentence)
    cited = [label for label in labels if label in evidence]
    if labels and not cited:  # a citation is a claim of evidence: one no tool returned is flagged in any sentence
        return f"cites {', '.join(labels)}, which no tool returned"
    if not states_fact(sentence, names):
        return None
    if not cited:
        return "cites no record"
    values: set[str] = set()
    for label in cited:
        values |= evidence[label].numbers
    plain = _plain(sentence)
    for written in numbers_in(sentence):
        if _matches(written, values):
            continue
        if re.search(re.escape(written) + r"\s*%", plain) and _matches(written, _percent(values)):
            continue
        return f"{written} is not a value of {', '.join(f'[{x}]' for x in cited)}"
    return None


def ungrounded_sentences(text: str, evidence: Mapping[str, Evidence], names: Iterable[str] = ()) -> list[str]:
    """The sentences of ``text`` that state a fact no cited record backs (in order, each once)."""
    names = list(names) + [n for e in evidence.values() for n in e.names]
    out: list[str] = []
    for sentence in split_sentences(text):
        if check_sentence(sentence, evidence, names) is not None and sentence not in out:
            out.append(sentence)
    return out


def _quote(sentence: str, limit: int = 90) -> str:
    text = " ".join(sentence.split())
    return f"\u201c{text if len(text) <= limit else text[: limit - 1] + '…'}\u201d"


def unchecked_note(ungrounded: list[str]) -> str:
    """The one line an answer with ungrounded sentences opens with."""
    count = len(ungrounded)
    shown = "; ".join(_quote(s) for s in ungrounded[:3]) + (f"; and {count - 3} more" if count > 3 else "")
    noun = "claim" if count == 1 else "claims"
    return (f"**Unchecked:** {count} {noun} below cite no record of this conversation or give a number that the "
            f"cited record does not hold: {shown}")
