"""Answers with citations: ``compose_answer(...)`` (offline, extractive) and ``check_citations(...)`` (LLM).

Why here and not in the prompt: a citation is only worth something if code ties it to a record that
a tool actually returned. Every sentence the offline answer writes ends with the bracketed label of
the record it was copied from; an LLM's answer is checked against the same records, labels that no
tool produced are marked as unverified, and model-generated text is always labelled as model output
(and as "untrained encoders — not evidence" when the model's encoders were not trained).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from biomedgpt.agent.state import ARTIFACT_KINDS
from biomedgpt.tools.records import (
    Compound,
    ModelAnswer,
    MoleculeProperties,
    Passage,
    ProteinEntry,
    SimilarHit,
)

#: The labels a citation may take (any other bracketed text is left alone).
LABEL_PATTERN = re.compile(r"^(PubChem CID \d+|UniProt [A-Z0-9]{6,10}(?:-\d+)?|PMID \d+|RDKit|BioMedGPT)$")
_BRACKETS = re.compile(r"\[([^\[\]\n]{1,80})\]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\"'])")

#: Model text beyond this many characters is cut in answers (the full text stays in the artifact).
MODEL_TEXT_LIMIT = 600
UNTRAINED_NOTE = "untrained encoders — not evidence"
MODEL_OUTPUT_NOTE = "model output, not a database fact"


# ----------------------------------------------------------------------------- artifacts


def classify(record: Mapping[str, Any]) -> str | None:
    """Which artifact list a record dict belongs to (by its public field names), or None."""
    keys = set(record)
    if {"kind", "similarity", "id"} <= keys:
        return "similar"
    if {"text", "question"} <= keys and ("trained" in keys or "inputs" in keys):
        return "model_answers"
    if {"lipinski_pass", "logp"} <= keys:
        return "properties"
    if "cid" in keys:
        return "compounds"
    if "accession" in keys:
        return "proteins"
    if "text" in keys and ("pmid" in keys or "chunk" in keys):
        return "passages"
    return None


def collect_artifacts(artifact: Any) -> dict[str, list[dict]]:
    """The typed records found anywhere in a tool's artifact (a record, a list, or a dict of them)."""
    found: dict[str, list[dict]] = {kind: [] for kind in ARTIFACT_KINDS}

    def walk(value: Any, depth: int = 0) -> None:
        if depth > 4 or value is None:
            return
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json")
        if isinstance(value, Mapping):
            kind = classify(value)
            if kind is not None:
                record = dict(value)
                if record not in found[kind]:
                    found[kind].append(record)
                return
            for item in value.values():
                walk(item, depth + 1)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item, depth + 1)

    walk(artifact)
    return found


def entity_from_artifacts(found: Mapping[str, list[dict]]) -> dict | None:
    """The entity a turn was about, for follow-ups: the first compound, protein or structure seen.

    The dict has the planner's ``Entity`` keys (kind, value, source) plus a display name and label.
    """
    for compound in found.get("compounds", []):
        title = compound.get("title")
        return {"kind": "molecule", "value": title or compound.get("smiles") or str(compound["cid"]),
                "source": "name" if title else ("smiles" if compound.get("smiles") else "cid"),
                "name": title, "label": f"PubChem CID {compound['cid']}"}
    for protein in found.get("proteins", []):
        return {"kind": "protein", "value": protein["accession"], "source": "accession",
                "name": protein.get("protein_name"), "label": f"UniProt {protein['accession']}"}
    for props in found.get("properties", []):
        return {"kind": "molecule", "value": props["smiles"], "source": "smiles", "name": None, "label": "RDKit"}
    for answer in found.get("model_answers", []):
        inputs = answer.get("inputs") or {}
        if inputs.get("smiles"):
            return {"kind": "molecule", "value": inputs["smiles"], "source": "smiles", "name": None,
                    "label": "BioMedGPT"}
        if inputs.get("sequence"):
            return {"kind": "protein", "value": inputs["sequence"], "source": "sequence", "name": None,
                    "label": "BioMedGPT"}
    return None


# ----------------------------------------------------------------------------- sources


def _similar_label(hit: Mapping[str, Any]) -> str:
    ident = str(hit.get("id", ""))
    if hit.get("kind") == "protein":
        return f"UniProt {ident}"
    return f"PubChem CID {ident}" if ident.isdigit() else f"{hit.get('source', 'reference')} {ident}"


def sources_from_state(state: Mapping[str, Any]) -> dict[str, dict]:
    """Every citable source of the current turn: label → {label, source, url, title}."""
    sources: dict[str, dict] = {}

    def add(label: str, source: str, url: str, title: str | None) -> None:
        sources.setdefault(label, {"label": label, "source": source, "url": url, "title": title or ""})

    for raw in state.get("compounds") or []:
        c = Compound.model_validate(raw)
        add(c.label, "PubChem", c.url, c.title or c.iupac_name)
    for raw in state.get("proteins") or []:
        p = ProteinEntry.model_validate(raw)
        add(p.label, "UniProt", p.url, p.protein_name)
    for raw in state.get("passages") or []:
        passage = Passage.model_validate(raw)
        if passage.pmid:
            add(passage.label, "PubMed", passage.url, passage.title)
    for raw in state.get("similar") or []:
        hit = SimilarHit.model_validate(raw)
        label = _similar_label(raw)
        url = hit.url
        if not url and label.startswith("PubChem CID "):
            url = f"https://pubchem.ncbi.nlm.nih.gov/compound/{hit.id}"
        if not url and label.startswith("UniProt "):
            url = f"https://www.uniprot.org/uniprotkb/{hit.id}/entry"
        add(label, hit.source, url, hit.name)
    if state.get("properties"):
        add("RDKit", "RDKit", "https://www.rdkit.org", "descriptors computed locally with RDKit (not looked up)")
    answers = state.get("model_answers") or []
    if answers:
        trained = all(a.get("trained", True) for a in answers)
        note = MODEL_OUTPUT_NOTE if trained else f"{MODEL_OUTPUT_NOTE}; {UNTRAINED_NOTE}"
        add("BioMedGPT", "BioMedGPT", "", f"BioMedGPT {answers[0].get('model') or 'model'} ({note})")
    return sources


def cited_labels(text: str) -> list[str]:
    """The citation labels in ``text`` in order of first appearance (``[A; B]`` counts both)."""
    labels: list[str] = []
    for match in _BRACKETS.finditer(text):
        for part in re.split(r"[;,]\s*", match.group(1)):
            part = part.strip()
            if LABEL_PATTERN.match(part) and part not in labels:
                labels.append(part)
    return labels


def citations_for(text: str, sources: Mapping[str, dict]) -> list[dict]:
    """The ``citations`` list of an answer: the known sources that its text cites."""
    return [dict(sources[label]) for label in cited_labels(text) if label in sources]


# ----------------------------------------------------------------------------- LLM answers


def check_citations(text: str, sources: Mapping[str, dict], model_answers: Iterable[Mapping] = (), *,
                    earlier: Mapping[str, dict] | None = None) -> str:
    """Check an LLM's answer against the sources; mark unknown labels; attach sources it forgot.

    ``sources`` are this turn's records, ``earlier`` those of previous turns of the session (citing
    them is fine; they are not re-attached). A label that looks like a citation but that no tool
    returned becomes ``[unverified: LABEL]``, so a reader can tell evidence from a made-up claim.
    """
    earlier = earlier or {}

    def fix(match: re.Match) -> str:
        parts = [p.strip() for p in re.split(r"[;,]\s*", match.group(1))]
        if not any(LABEL_PATTERN.match(p) for p in parts):
            return match.group(0)
        kept = [p if (p in sources or p in earlier or not LABEL_PATTERN.match(p)) else f"unverified: {p}"
                for p in parts]
        return "[" + "; ".join(kept) + "]"

    checked = _BRACKETS.sub(fix, text or "").strip()
    used = [label for label in cited_labels(checked) if label in sources]
    missing = [label for label in sources if label not in used]
    if sources and not used and not any(label in earlier for label in cited_labels(checked)):
        checked += "\n\nSources: " + " ".join(f"[{label}]" for label in sources)
    elif missing:
        checked += "\n\nAlso consulted: " + " ".join(f"[{label}]" for label in missing)
    answers = list(model_answers)
    if answers:
        untrained = any(not a.get("trained", True) for a in answers)
        checked += f"\n\nNote: text attributed to [BioMedGPT] is {MODEL_OUTPUT_NOTE}" + (
            f" ({UNTRAINED_NOTE})." if untrained else ".")
    return checked


# ----------------------------------------------------------------------------- offline answers


def _snippet(text: str | None, sentences: int = 2, limit: int = 360) -> str:
    """The first sentences of a text, cut at ``limit`` characters on a word boundary."""
    text = " ".join((text or "").split())
    if not text:
        return ""
    parts = _SENTENCE_END.split(text)
    out = " ".join(parts[:sentences])
    if len(out) > limit:
        out = out[:limit].rsplit(" ", 1)[0] + " …"
    return out.rstrip(".") + ("" if out.endswith("…") else "")


def _fmt(value: Any, digits: int = 2) -> str:
    """A float with at most ``digits`` decimals and no trailing zeros (``-0`` shown as ``0``)."""
    if isinstance(value, float):
        text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
        return "0" if text in ("-0", "") else text
    return str(value)


def _compound_lines(raw: dict) -> list[str]:
    c = Compound.model_validate(raw)
    cite = f"[{c.label}]"
    name = c.title or c.iupac_name or c.label
    lines = [f"**{name}** ({c.label})"]
    facts = []
    if c.formula:
        facts.append(f"formula {c.formula}")
    if c.molecular_weight is not None:
        facts.append(f"molecular weight {_fmt(c.molecular_weight)} g/mol")
    if facts:
        lines.append(f"- {name} has {', '.join(facts)} {cite}.")
    if c.iupac_name and c.iupac_name != name:
        lines.append(f"- IUPAC name: {c.iupac_name} {cite}.")
    if c.smiles:
        lines.append(f"- SMILES: `{c.smiles}` {cite}.")
    extra = []
    if c.xlogp is not None:
        extra.append(f"XLogP {_fmt(c.xlogp)}")
    if c.tpsa is not None:
        extra.append(f"TPSA {_fmt(c.tpsa)} Å²")
    if extra:
        lines.append(f"- {', '.join(extra)} {cite}.")
    for description in c.descriptions[:2]:
        origin = f" (from {description.source})" if description.source else ""
        lines.append(f"- {_snippet(description.text)}{origin} {cite}.")
    return lines


def _properties_lines(raw: dict) -> list[str]:
    p = MoleculeProperties.model_validate(raw)
    lines = [f"**Computed properties** of `{p.smiles}` (computed locally with RDKit, not looked up)"]
    lines.append(f"- Formula {p.formula}, average mass {_fmt(p.average_mass)} Da, exact mass {_fmt(p.exact_mass, 4)} Da [RDKit].")
    lines.append(f"- Crippen logP {_fmt(p.logp)}, TPSA {_fmt(p.tpsa)} Å², H-bond donors {p.h_bond_donors}, "
                 f"acceptors {p.h_bond_acceptors}, rotatable bonds {p.rotatable_bonds} [RDKit].")
    lines.append(f"- Rings {p.rings} (aromatic {p.aromatic_rings}), heavy atoms {p.heavy_atoms} [RDKit].")
    verdict = "passes" if p.lipinski_pass else "fails"
    lines.append(f"- Lipinski's rule of five: {verdict} ({p.lipinski_violations} violation"
                 f"{'' if p.lipinski_violations == 1 else 's'}) [RDKit].")
    return lines


def _protein_lines(raw: dict) -> list[str]:
    p = ProteinEntry.model_validate(raw)
    cite = f"[{p.label}]"
    name = p.protein_name or p.entry_name or p.accession
    who = ", ".join(x for x in [", ".join(p.gene_names[:2]), p.organism or ""] if x)
    status = "reviewed (Swiss-Prot)" if p.reviewed else ("unreviewed (TrEMBL)" if p.reviewed is False else "")
    lines = [f"**{name}** ({p.label})"]
    head = f"- {p.accession} is {name}" + (f" ({who})" if who else "") + (f", {status}" if status else "")
    lines.append(f"{head} {cite}.")
    if p.function:
        lines.append(f"- Function: {_snippet(p.function, 3, 500)} {cite}.")
    if p.subcellular_locations:
        lines.append(f"- Subcellular location: {', '.join(p.subcellular_locations[:6])} {cite}.")
    if p.family:
        lines.append(f"- Family: {_snippet(p.family, 1)} {cite}.")
    if p.length:
        mass = f", mass {p.mass} Da" if p.mass else ""
        lines.append(f"- Length {p.length} amino acids{mass} {cite}.")
    return lines


def _model_lines(raw: dict) -> list[str]:
    a = ModelAnswer.model_validate(raw)
    note = MODEL_OUTPUT_NOTE if a.trained else f"{MODEL_OUTPUT_NOTE}; {UNTRAINED_NOTE}"
    saw = ", ".join(f"{k}={_fmt(v)}" for k, v in a.inputs.items()
                    if k != "sequence" and not isinstance(v, (dict, list)) and len(str(v)) <= 40)
    if "sequence" in a.inputs:
        saw = ", ".join(x for x in [saw, f"a protein sequence of {len(str(a.inputs['sequence']))} residues"] if x)
    lines = [f"**BioMedGPT model output** ({note}{'; input: ' + saw if saw else ''})"]
    text = " ".join(a.text.split()) or "(the model returned no text)"
    if len(text) > MODEL_TEXT_LIMIT:
        text = text[:MODEL_TEXT_LIMIT].rsplit(" ", 1)[0] + " …"
    lines.append(f"- The model says: \u201c{text}\u201d [BioMedGPT].")
    if a.note:
        lines.append(f"- {a.note} [BioMedGPT].")
    return lines


def _similar_lines(hits: list[dict]) -> list[str]:
    if not hits:
        return []
    kind = "proteins" if hits[0].get("kind") == "protein" else "molecules"
    lines = [f"**Nearest known {kind}** (evidence by similarity, not identity)"]
    for raw in hits[:5]:
        hit = SimilarHit.model_validate(raw)
        name = hit.name or (f"CID {hit.id}" if hit.kind == "molecule" and hit.id.isdigit() else hit.id)
        described = f": {_snippet(hit.description, 1, 240)}" if hit.description else ""
        lines.append(f"- {name} (similarity {hit.similarity:.2f}, {hit.source}){described} [{_similar_label(raw)}].")
    return lines


def _passage_lines(passages: list[dict]) -> list[str]:
    usable = [Passage.model_validate(p) for p in passages if p.get("pmid")]
    if not usable:
        return []
    lines = ["**From the literature**"]
    for p in usable[:4]:
        title = f" — {p.title}" + (f" ({p.year})" if p.year else "") if p.title else ""
        lines.append(f"- \u201c{_snippet(p.text, 2, 300)}\u201d{title} [{p.label}].")
    return lines


_ORDER = {
    "properties": ("properties", "compounds", "proteins", "model_answers", "similar", "passages"),
    "literature": ("passages", "compounds", "proteins", "properties", "model_answers", "similar"),
    "similar": ("similar", "compounds", "properties", "model_answers", "proteins", "passages"),
    "function": ("proteins", "model_answers", "similar", "passages", "compounds", "properties"),
    "location": ("proteins", "model_answers", "similar", "passages", "compounds", "properties"),
    "family": ("proteins", "model_answers", "similar", "passages", "compounds", "properties"),
}
_DEFAULT_ORDER = ("compounds", "proteins", "model_answers", "similar", "properties", "passages")
#: Properties a question may ask for directly; the answer then opens with them, each with its source.
_ASKED: tuple[tuple[str, re.Pattern], ...] = tuple((key, re.compile(pattern, re.I)) for key, pattern in (
    ("weight", r"molecular\s+weight|mol(?:ecular)?\.?\s*wt|molar\s+mass|\bmass\b|\bMW\b|how heavy"),
    ("formula", r"\bformula\b"),
    ("logp", r"\blog\s?p\b|xlogp|lipophilicity"),
    ("tpsa", r"\btpsa\b|polar surface"),
    ("donors", r"\bdonors?\b"),
    ("acceptors", r"\bacceptors?\b"),
    ("rotatable", r"\brotatable\b"),
    ("rings", r"\brings?\b"),
    ("lipinski", r"lipinski|rule of (?:five|5)|drug-?like"),
))


def _compound_fact(key: str, c: Compound) -> str | None:
    name, cite = c.title or c.label, f"[{c.label}]"
    if key == "weight" and c.molecular_weight is not None:
        return f"The molecular weight of {name} is {_fmt(c.molecular_weight)} g/mol {cite}."
    if key == "formula" and c.formula:
        return f"The formula of {name} is {c.formula} {cite}."
    if key == "logp" and c.xlogp is not None:
        return f"The XLogP of {name} is {_fmt(c.xlogp)} {cite}."
    if key == "tpsa" and c.tpsa is not None:
        return f"The TPSA of {name} is {_fmt(c.tpsa)} Å² {cite}."
    return None


def _properties_fact(key: str, p: MoleculeProperties) -> str | None:
    name = f"`{p.smiles}`"
    return {
        "weight": f"The average molecular weight of {name} is {_fmt(p.average_mass)} g/mol [RDKit].",
        "formula": f"The formula of {name} is {p.formula} [RDKit].",
        "logp": f"The Crippen logP of {name} is {_fmt(p.logp)} [RDKit].",
        "tpsa": f"The TPSA of {name} is {_fmt(p.tpsa)} Å² [RDKit].",
        "donors": f"{name} has {p.h_bond_donors} H-bond donor{'' if p.h_bond_donors == 1 else 's'} [RDKit].",
        "acceptors": f"{name} has {p.h_bond_acceptors} H-bond acceptor{'' if p.h_bond_acceptors == 1 else 's'} [RDKit].",
        "rotatable": f"{name} has {p.rotatable_bonds} rotatable bond{'' if p.rotatable_bonds == 1 else 's'} [RDKit].",
        "rings": f"{name} has {p.rings} ring{'' if p.rings == 1 else 's'} ({p.aromatic_rings} aromatic) [RDKit].",
        "lipinski": (f"{name} {'passes' if p.lipinski_pass else 'fails'} Lipinski's rule of five "
                     f"({p.lipinski_violations} violation{'' if p.lipinski_violations == 1 else 's'}) [RDKit]."),
    }.get(key)


_HIGHEST = re.compile(r"\b(?:highest|largest|greatest|biggest|most|heaviest|maximum|max)\b", re.I)
_LOWEST = re.compile(r"\b(?:lowest|smallest|least|fewest|lightest|minimum|min)\b", re.I)
#: Numeric values that "which has the highest X" can rank: (PubChem field, RDKit field, wording).
_RANKABLE = {
    "weight": ("molecular_weight", "average_mass", "molecular weight"),
    "logp": ("xlogp", "logp", "logP"),
    "tpsa": ("tpsa", "tpsa", "TPSA"),
    "donors": (None, "h_bond_donors", "number of H-bond donors"),
    "acceptors": (None, "h_bond_acceptors", "number of H-bond acceptors"),
    "rotatable": (None, "rotatable_bonds", "number of rotatable bonds"),
    "rings": (None, "rings", "number of rings"),
}


def _ranking(key: str, question: str, compounds: list[Compound], computed: list[MoleculeProperties]) -> str | None:
    """"Which of them has the highest logP?": name the winner among the records of one source."""
    direction = "highest" if _HIGHEST.search(question) else "lowest" if _LOWEST.search(question) else None
    if direction is None or key not in _RANKABLE:
        return None
    pubchem_field, rdkit_field, wording = _RANKABLE[key]
    candidates: list[tuple[float, str, str]] = []
    if pubchem_field:
        candidates = [(getattr(c, pubchem_field), c.title or c.label, f"[{c.label}]") for c in compounds
                      if getattr(c, pubchem_field) is not None]
    if len(candidates) < 2:
        candidates = [(float(getattr(p, rdkit_field)), f"`{p.smiles}`", "[RDKit]") for p in computed]
    if len(candidates) < 2:
        return None
    value, name, cite = (max if direction == "highest" else min)(candidates, key=lambda item: item[0])
    return f"Of these {len(candidates)}, {name} has the {direction} {wording} ({_fmt(value)}) {cite}."


def direct_answer(question: str, state: Mapping[str, Any]) -> list[str]:
    """Sentences that answer the properties a question names, first from PubChem, else from RDKit.

    A superlative question ("which has the highest logP?") is answered first with the ranking.
    """
    asked = [key for key, pattern in _ASKED if pattern.search(question or "")]
    compounds = [Compound.model_validate(c) for c in (state.get("compounds") or [])[:5]]
    computed = [MoleculeProperties.model_validate(p) for p in (state.get("properties") or [])[:5]]
    sentences: list[str] = []
    for key in asked:
        ranking = _ranking(key, question or "", compounds, computed)
        if ranking:
            sentences.append(ranking)
        from_pubchem = [f for f in (_compound_fact(key, c) for c in compounds) if f]
        sentences += from_pubchem or [f for f in (_properties_fact(key, p) for p in computed) if f]
    return sentences


def compose_answer(question: str, state: Mapping[str, Any], errors: list[dict] | None = None, *,
                   limited_after: int | None = None) -> str:
    """A grounded, extractive answer from the turn's records; every claim ends with its label.

    ``errors`` are the failed tool calls ({name, args, error}); they are reported, not hidden, and
    do not stop the rest of the answer. ``limited_after`` is set when the step limit was reached.
    """
    blocks: list[list[str]] = []
    for kind in _ORDER.get(state.get("intent") or "", _DEFAULT_ORDER):
        records = state.get(kind) or []
        if not records:
            continue
        if kind == "compounds":
            for raw in records[:3]:
                blocks.append(_compound_lines(raw))
        elif kind == "properties":
            for raw in records[:3]:
                blocks.append(_properties_lines(raw))
        elif kind == "proteins":
            for raw in records[:3]:
                blocks.append(_protein_lines(raw))
        elif kind == "model_answers":
            for raw in records[:2]:
                blocks.append(_model_lines(raw))
        elif kind == "similar":
            blocks.append(_similar_lines(records))
        elif kind == "passages":
            blocks.append(_passage_lines(records))
    blocks = [b for b in blocks if b]
    parts: list[str] = []
    if limited_after is not None:
        parts.append(f"Could not finish in {limited_after} steps; here is what was found.")
    lead = direct_answer(question, state)
    if lead:
        parts.append(" ".join(lead))
    if blocks:
        parts.extend("\n".join(block) for block in blocks)
    elif not errors:
        parts.append(
            "I found no evidence to answer this. Name a compound (or give a SMILES, CID or InChIKey), a protein "
            "(UniProt accession or sequence), or ask about the literature.")
    if errors:
        failed = ["**Could not look up**"]
        for error in errors:
            args = ", ".join(f"{k}={v!r}" for k, v in (error.get("args") or {}).items())
            failed.append(f"- {error['name']}({args}): {_clean_error(error.get('error', ''))}")
        parts.append("\n".join(failed))
    return "\n\n".join(parts)


def _clean_error(text: str) -> str:
    text = " ".join(str(text).split())
    text = re.sub(r"^Error:\s*", "", text)
    return text[:400]
