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
from biomedgpt.agent.understanding import PROTEIN_ATTRIBUTES
from biomedgpt.tools.records import (
    Compound,
    ModelAnswer,
    MoleculeProperties,
    Passage,
    ProteinEntry,
    SimilarHit,
)

#: The labels a citation may take (any other bracketed text is left alone).
LABEL_PATTERN = re.compile(r"^(PubChem CID \d+|ChEBI-20 CID \d+|UniProt [A-Z0-9]{6,10}(?:-\d+)?|PMID \d+|RDKit|"
                           r"BioMedGPT|Doc [^\[\];]{1,60})$")
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
    if "chebi" in str(hit.get("source", "")).lower() and ident.isdigit():
        return f"ChEBI-20 CID {ident}"  # its text comes from ChEBI-20, not from PubChem
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
        add(passage.label, "PubMed" if passage.pmid else "document", passage.url,
            passage.title + (f" (chunk {passage.chunk})" if not passage.pmid else "") if passage.title else "")
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


#: What the assistant does, said when a question is off-domain, unclear, or asks for help.
CAPABILITIES = ("I answer questions about molecules (a name, SMILES, PubChem CID or InChIKey: properties from "
                "PubChem and RDKit, nearest known structures), proteins (a UniProt accession, name or sequence: "
                "function, gene, organism, location, diseases, GO terms, structures) and the biomedical literature "
                "in the local store, with every fact cited.")
OUT_OF_DOMAIN = "That is outside what I can help with. " + CAPABILITIES
UNCLEAR = ("I'm not sure what you are asking. " + CAPABILITIES +
           " For example: \u201cWhat is the molecular weight of aspirin?\u201d, \u201cWhich diseases is P05067 "
           "linked to?\u201d or \u201cpapers on BRCA1 and breast cancer\u201d.")

#: Human names of the attributes (for sentences and table headers).
ATTRIBUTE_NAMES = {
    "molecular_weight": "molecular weight", "exact_mass": "exact (monoisotopic) mass", "formula": "molecular formula",
    "smiles": "SMILES", "inchikey": "InChIKey", "inchi": "InChI", "iupac_name": "IUPAC name", "cid": "PubChem CID",
    "synonyms": "synonyms", "logp": "logP", "tpsa": "TPSA", "hbond_donors": "number of H-bond donors",
    "hbond_acceptors": "number of H-bond acceptors", "rotatable_bonds": "number of rotatable bonds",
    "rings": "number of rings", "aromatic_rings": "number of aromatic rings", "heavy_atoms": "number of heavy atoms",
    "rule_of_five": "Lipinski rule-of-five verdict", "description": "description", "charge": "formal charge",
    "function": "function", "gene": "gene", "organism": "organism", "length": "length", "mass": "mass",
    "subcellular_location": "subcellular location", "family": "family", "diseases": "associated diseases",
    "go_terms": "GO terms", "pdb_structures": "PDB structures", "keywords": "UniProt keywords",
    "sequence": "sequence", "reviewed": "review status", "accession": "UniProt accession",
}
#: Attributes a table of several molecules shows when none was asked.
DEFAULT_MOLECULE_COLUMNS = ("molecular_weight", "formula", "logp", "tpsa", "hbond_donors", "hbond_acceptors")
DEFAULT_PROTEIN_COLUMNS = ("gene", "organism", "length", "mass")
_HIGHER = re.compile(r"\b(?:highest|largest|greatest|biggest|most|heaviest|maximum|max|higher|larger|heavier|more|"
                     r"bigger|greater)\b", re.I)
_LOWER = re.compile(r"\b(?:lowest|smallest|least|fewest|lightest|minimum|min|lower|smaller|lighter|less|fewer)\b",
                    re.I)


#: Attributes that are counts ("has 3 heavy atoms").
_COUNTS = frozenset({"hbond_donors", "hbond_acceptors", "rotatable_bonds", "rings", "aromatic_rings", "heavy_atoms"})


class Subject:
    """One entity of the answer with every record about it: PubChem, RDKit, UniProt."""

    def __init__(self, compound: Compound | None = None, properties: MoleculeProperties | None = None,
                 protein: ProteinEntry | None = None) -> None:
        self.compound, self.properties, self.protein = compound, properties, protein

    @property
    def kind(self) -> str:
        return "protein" if self.protein else "molecule"

    @property
    def name(self) -> str:
        if self.protein:
            return self.protein.protein_name or self.protein.accession
        if self.compound:
            return self.compound.title or self.compound.iupac_name or self.compound.label
        return f"`{self.properties.smiles}`" if self.properties else "?"

    @property
    def smiles(self) -> str | None:
        if self.compound and (self.compound.smiles or self.compound.connectivity_smiles):
            return self.compound.smiles or self.compound.connectivity_smiles
        return self.properties.smiles if self.properties else None

    def value(self, attribute: str) -> tuple[Any, str, str] | None:
        """(value, cited label, wording) of ``attribute``, from the record that holds it, or None."""
        c, p, e = self.compound, self.properties, self.protein
        if e is not None:
            label = e.label
            got = {
                "function": e.function, "gene": ", ".join(e.gene_names[:4]) or None, "organism": e.organism,
                "length": f"{e.length} amino acids" if e.length else None,
                "mass": f"{e.mass:,} Da" if e.mass else None,
                "subcellular_location": ", ".join(e.subcellular_locations[:8]) or None, "family": e.family,
                "diseases": "; ".join(e.diseases[:10]) or None,
                "go_terms": "; ".join(e.go_terms[:12]) + (f" (and {len(e.go_terms) - 12} more)"
                                                         if len(e.go_terms) > 12 else "") if e.go_terms else None,
                "pdb_structures": ", ".join(e.pdb_ids[:15]) + (f" (and {len(e.pdb_ids) - 15} more; "
                                                              f"{len(e.pdb_ids)} in all)" if len(e.pdb_ids) > 15 else "")
                if e.pdb_ids else None,
                "keywords": ", ".join(e.keywords[:15]) or None, "sequence": e.sequence,
                "reviewed": None if e.reviewed is None else ("reviewed (Swiss-Prot)" if e.reviewed
                                                             else "unreviewed (TrEMBL)"),
                "accession": e.accession,
            }.get(attribute)
            return (got, label, ATTRIBUTE_NAMES.get(attribute, attribute)) if got not in (None, "") else None
        if c is not None:
            pubchem = {
                "molecular_weight": (c.molecular_weight, "molecular weight", " g/mol"), "formula": (c.formula, "formula", ""),
                "smiles": (c.smiles or c.connectivity_smiles, "SMILES", ""), "inchikey": (c.inchikey, "InChIKey", ""),
                "inchi": (c.inchi, "InChI", ""), "iupac_name": (c.iupac_name, "IUPAC name", ""), "cid": (c.cid, "CID", ""),
                "synonyms": ("; ".join(c.synonyms[:10]) or None, "synonyms", ""), "logp": (c.xlogp, "XLogP3", ""),
                "tpsa": (c.tpsa, "TPSA", " Å²"),
                "description": (_snippet(c.descriptions[0].text, 3, 600) if c.descriptions else None, "description", ""),
            }.get(attribute)
            if pubchem and pubchem[0] not in (None, ""):
                return (f"{_fmt(pubchem[0])}{pubchem[2]}", c.label, pubchem[1])
        if p is not None:
            rdkit = {
                "molecular_weight": (p.average_mass, "average molecular weight", " g/mol"),
                "exact_mass": (p.exact_mass, "exact mass", " Da"), "formula": (p.formula, "formula", ""),
                "smiles": (p.smiles, "canonical SMILES", ""), "inchikey": (p.inchikey, "InChIKey", ""),
                "inchi": (p.inchi, "InChI", ""), "logp": (p.logp, "Crippen logP", ""), "tpsa": (p.tpsa, "TPSA", " Å²"),
                "hbond_donors": (p.h_bond_donors, "H-bond donors", ""),
                "hbond_acceptors": (p.h_bond_acceptors, "H-bond acceptors", ""),
                "rotatable_bonds": (p.rotatable_bonds, "rotatable bonds", ""), "rings": (p.rings, "rings", ""),
                "aromatic_rings": (p.aromatic_rings, "aromatic rings", ""), "heavy_atoms": (p.heavy_atoms, "heavy atoms", ""),
                "charge": (p.formal_charge, "formal charge", ""),
                "rule_of_five": (("passes" if p.lipinski_pass else "fails") + f" Lipinski's rule of five "
                                 f"({p.lipinski_violations} violation{'' if p.lipinski_violations == 1 else 's'})",
                                 "rule of five", ""),
            }.get(attribute)
            if rdkit and rdkit[0] is not None:
                return (f"{_fmt(rdkit[0], 4 if attribute == 'exact_mass' else 2)}{rdkit[2]}", "RDKit", rdkit[1])
        return None

    def number(self, attribute: str) -> float | None:
        """The attribute as a number, for rankings (None when absent or not numeric)."""
        found = self.value(attribute)
        if found is None:
            return None
        match = re.match(r"^-?[\d,]+(?:\.\d+)?", str(found[0]))
        return float(match.group().replace(",", "")) if match else None


def subjects_from_state(state: Mapping[str, Any]) -> list[Subject]:
    """One ``Subject`` per entity: a PubChem record joined with the RDKit record of the same structure."""
    from biomedgpt.core.chem import try_parse_smiles

    def canonical(smiles: str | None) -> str | None:
        mol = try_parse_smiles(smiles) if smiles else None
        if mol is None:
            return None
        from rdkit import Chem

        return Chem.MolToSmiles(mol)

    computed = [MoleculeProperties.model_validate(r) for r in state.get("properties") or []]
    by_smiles = {canonical(p.smiles): p for p in computed}
    used: set[int] = set()
    subjects: list[Subject] = []
    for raw in state.get("compounds") or []:
        compound = Compound.model_validate(raw)
        match = None
        for smiles in (compound.smiles, compound.connectivity_smiles):
            match = by_smiles.get(canonical(smiles)) if smiles else None
            if match is not None:
                break
        if match is not None:
            used.add(id(match))
        subjects.append(Subject(compound=compound, properties=match))
    subjects += [Subject(properties=p) for p in computed if id(p) not in used]
    subjects += [Subject(protein=ProteinEntry.model_validate(r)) for r in state.get("proteins") or []]
    return subjects


def _attribute_sentence(subject: Subject, attribute: str, offline: bool) -> str:
    found = subject.value(attribute)
    wording = ATTRIBUTE_NAMES.get(attribute, attribute)
    if found is not None:
        value, label, field = found
        if attribute == "rule_of_five":
            return f"{subject.name} {value} [{label}]."
        if attribute in ("function", "description"):
            return f"{field.capitalize()} of {subject.name}: {value} [{label}]."
        if attribute in _COUNTS:
            return f"{subject.name} has {value} {field} [{label}]."
        return f"The {field} of {subject.name} is {value} [{label}]."
    if subject.protein is not None:
        if attribute in ATTRIBUTE_NAMES and attribute not in PROTEIN_ATTRIBUTES:
            return f"The {wording} does not apply to a protein; UniProt's entry {subject.protein.accession} is about " \
                   f"{subject.name} [{subject.protein.label}]."
        return f"UniProt's entry for {subject.name} lists no {wording} [{subject.protein.label}]."
    if attribute in PROTEIN_ATTRIBUTES:
        return f"{subject.name} is a small molecule; a {wording} applies to proteins."
    if subject.compound is not None:
        return f"PubChem's record for {subject.name} has no {wording} [{subject.compound.label}]."
    if offline:
        return f"The {wording} of {subject.name} needs a PubChem look-up, which is not possible offline."
    return f"The {wording} of {subject.name} is not available from the records found."


def _table(subjects: list[Subject], attributes: list[str]) -> str:
    header = "| | " + " | ".join(ATTRIBUTE_NAMES.get(a, a) for a in attributes) + " | source |"
    lines = [header, "|" + "---|" * (len(attributes) + 2)]
    for subject in subjects:
        cells, labels = [], []
        for attribute in attributes:
            found = subject.value(attribute)
            cells.append(str(found[0]).replace("|", "/")[:60] if found else "not available")
            if found and found[1] not in labels:
                labels.append(found[1])
        lines.append(f"| {subject.name} | " + " | ".join(cells) + " | " + " ".join(f"[{x}]" for x in labels) + " |")
    return "\n".join(lines)


def _ranking(subjects: list[Subject], attribute: str, question: str) -> str | None:
    """Rank by one attribute, with values of one method only (PubChem's XLogP3 and RDKit's Crippen logP
    are not comparable): PubChem's values when every subject has one, else RDKit's, else a mixed ranking
    that says so."""
    direction = "lowest" if _LOWER.search(question) and not _HIGHER.search(question) else "highest"
    views = (
        [Subject(compound=s.compound, protein=s.protein) for s in subjects],
        [Subject(properties=s.properties, protein=s.protein) for s in subjects],
    )
    ranked: list[tuple[float, Subject, Subject]] = []
    for view in views:
        candidate = [(v.number(attribute), v, s) for v, s in zip(view, subjects, strict=True)]
        if all(n is not None for n, _, _ in candidate):
            ranked = candidate  # type: ignore[assignment]
            break
    mixed = ""
    if not ranked:
        ranked = [(s.number(attribute), s, s) for s in subjects if s.number(attribute) is not None]  # type: ignore[misc]
        mixed = " (values from different methods: compare with care)"
    if len(ranked) < 2:
        return None
    ranked.sort(key=lambda item: item[0], reverse=True)
    wording = ATTRIBUTE_NAMES.get(attribute, attribute)
    order = " > ".join(f"{s.name} ({_fmt(n)})" for n, _, s in ranked)
    labels = " ".join(dict.fromkeys(f"[{v.value(attribute)[1]}]" for _, v, _ in ranked))
    n, _, s = ranked[-1] if direction == "lowest" else ranked[0]
    return f"{s.name} has the {direction} {wording} ({_fmt(n)}){mixed}; by {wording}: {order} {labels}."


def _similarity_pair(subjects: list[Subject]) -> str | None:
    from biomedgpt.core.chem import tanimoto

    structures = [(s.name, s.smiles) for s in subjects if s.smiles]
    if len(structures) < 2:
        return None
    (name_a, a), (name_b, b) = structures[:2]
    score = tanimoto(a, b)
    return (f"The Tanimoto similarity of {name_a} and {name_b} is {score:.2f} (Morgan fingerprints, radius 2, "
            f"2048 bits) [RDKit].")


def _evidence_hits(hits: list[dict], min_molecule: float) -> tuple[list[dict], int]:
    """Neighbours close enough to be evidence, and how many were dropped as too distant."""
    kept = []
    for raw in hits:
        hit = SimilarHit.model_validate(raw)
        floor = min_molecule if hit.kind == "molecule" else PROTEIN_NEIGHBOUR_FLOOR
        if hit.similarity >= floor:
            kept.append(raw)
    return kept, len(hits) - len(kept)


#: 3-mer cosine below which a protein neighbour is no evidence (random pairs score 0.05–0.15).
PROTEIN_NEIGHBOUR_FLOOR = 0.5


def _literature_lines(passages: list[dict], min_score: float, searched: int | None) -> list[str]:
    relevant = [Passage.model_validate(p) for p in passages if float(p.get("score") or 0) >= min_score]
    if not relevant:
        counted = f" ({searched:,} chunks searched)" if searched else ""
        return [f"No relevant passage in the literature store{counted}: nothing scored above the relevance floor "
                f"({min_score:.2f})."]
    seen: set[str] = set()
    lines = ["**From the literature**"]
    for p in relevant:
        if p.label in seen:
            continue  # one entry per document
        seen.add(p.label)
        title = f" — {p.title}" + (f" ({p.year})" if p.year else "") if p.title else ""
        lines.append(f"- \u201c{_snippet(p.text, 2, 300)}\u201d{title} [{p.label}].")
        if len(seen) >= 4:
            break
    return lines


def compose_answer(question: str, state: Mapping[str, Any], errors: list[dict] | None = None, *,
                   limited_after: int | None = None, settings: Any = None) -> str:
    """A grounded, extractive answer from the turn's records; every claim ends with its label.

    The first sentences answer what was asked (the requested attributes, a ranking, a similarity);
    records follow as evidence; model text comes last and labelled. ``errors`` are the failed tool
    calls ({name, args, error}); they are reported, not hidden.
    """
    from biomedgpt.core.settings import get_settings

    settings = settings or get_settings()
    intent = state.get("intent") or "describe"
    attributes = list(state.get("attributes") or [])
    offline = bool(state.get("offline"))
    if intent == "out_of_domain":
        return OUT_OF_DOMAIN
    if intent == "help":
        return "Hello! " + CAPABILITIES
    if intent == "unclear":
        return UNCLEAR
    subjects = subjects_from_state(state)
    parts: list[str] = []
    if limited_after is not None:
        parts.append(f"Could not finish in {limited_after} steps; here is what was found.")

    lead: list[str] = []
    if intent == "similarity_pair":
        sentence = _similarity_pair(subjects)
        if sentence:
            lead.append(sentence)
    if intent == "compare" and len(subjects) > 1:
        shown = attributes or list(DEFAULT_PROTEIN_COLUMNS if subjects[0].kind == "protein"
                                   else DEFAULT_MOLECULE_COLUMNS)
        for attribute in attributes:
            ranking = _ranking(subjects, attribute, question)
            if ranking:
                lead.append(ranking)
        if not lead:
            lead.append(f"Compared: {', '.join(s.name for s in subjects)}.")
        parts.append(" ".join(lead))
        parts.append(_table(subjects, shown))
        lead = []
    elif intent in ("attribute", "compare") and attributes:
        for subject in subjects or []:
            lead += [_attribute_sentence(subject, a, offline) for a in attributes]
        if len(subjects) > 1 and len(attributes) > 0:
            parts.append(" ".join(lead))
            parts.append(_table(subjects, attributes))
            lead = []
    if lead:
        parts.append(" ".join(lead))

    blocks: list[list[str]] = []
    if intent in ("describe", "similar", "model") or (intent in ("attribute", "compare") and not subjects):
        if intent != "model":
            for subject in subjects[:3]:
                if subject.compound:
                    blocks.append(_compound_lines(subject.compound.model_dump()))
                if subject.properties:
                    blocks.append(_properties_lines(subject.properties.model_dump()))
                if subject.protein:
                    blocks.append(_protein_lines(subject.protein.model_dump()))
        hits, dropped = _evidence_hits(state.get("similar") or [], settings.neighbour_min_similarity)
        if hits:
            blocks.append(_similar_lines(hits))
        elif dropped:
            kind = "protein" if (state.get("similar") or [{}])[0].get("kind") == "protein" else "molecule"
            blocks.append([f"No close known {kind}: the nearest of {dropped} reference structures are below the "
                           "similarity floor, so none is shown as evidence."])
        for raw in (state.get("model_answers") or [])[:2]:
            blocks.append(_model_lines(raw))  # model text is secondary: after every database fact, labelled
    if state.get("passages") or intent == "literature":
        blocks.append(_literature_lines(state.get("passages") or [], settings.literature_min_score,
                                        state.get("searched")))
    parts.extend("\n".join(b) for b in blocks if b)
    if not parts and not errors:
        parts.append("I found no evidence to answer this. " + CAPABILITIES)
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
