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
from biomedgpt.agent.understanding import CROSS_KIND, PROTEIN_ATTRIBUTES
from biomedgpt.tools.records import (
    MODEL_OUTPUT_NOTE,
    UNTRAINED_NOTE,
    Compound,
    Fact,
    ModelAnswer,
    MoleculeProperties,
    Passage,
    ProteinEntry,
    SimilarHit,
    evalue_text,
    fmt,
)

#: The labels a citation may take (any other bracketed text is left alone).
from biomedgpt.core.sources import BIOPYTHON_LABEL, BIOPYTHON_URL, LABEL_PATTERN  # noqa: E402 - defined once
from biomedgpt.core.chem import sequence_mass  # noqa: E402
_BRACKETS = re.compile(r"\[([^\[\]\n]{1,80})\]")


# ----------------------------------------------------------------------------- artifacts


def file_records(records: Iterable[BaseModel]) -> dict[str, list[dict]]:
    """Typed records (from ``langchain_tools.records_of``) filed by their type's state list, as plain dicts."""
    found: dict[str, list[dict]] = {kind: [] for kind in ARTIFACT_KINDS}
    for record in records:
        dumped = record.model_dump(mode="json")
        if dumped not in found[record.artifact]:
            found[record.artifact].append(dumped)
    return found


def entity_from_artifacts(found: Mapping[str, list[dict]]) -> dict | None:
    """The entity a turn was about, for follow-ups: the first compound, protein or structure seen.

    The dict has the planner's ``Entity`` keys (kind, value, source) plus a display name and label.
    """
    for raw in found.get("compounds", []):
        compound = Compound.model_validate(raw)
        return {"kind": "molecule", "value": compound.title or compound.smiles or str(compound.cid),
                "source": "name" if compound.title else ("smiles" if compound.smiles else "cid"),
                "name": compound.title, "label": compound.label}
    for raw in found.get("proteins", []):
        protein = ProteinEntry.model_validate(raw)
        return {"kind": "protein", "value": protein.accession, "source": "accession",
                "name": protein.protein_name, "label": protein.label}
    for raw in found.get("properties", []):
        return {"kind": "molecule", "value": raw["smiles"], "source": "smiles", "name": None, "label": "RDKit"}
    for raw in found.get("model_answers", []):
        inputs = ModelAnswer.model_validate(raw).inputs
        if inputs.get("smiles"):
            return {"kind": "molecule", "value": inputs["smiles"], "source": "smiles", "name": None,
                    "label": "BioMedGPT"}
        if inputs.get("sequence"):
            return {"kind": "protein", "value": inputs["sequence"], "source": "sequence", "name": None,
                    "label": "BioMedGPT"}
    return None


# ----------------------------------------------------------------------------- sources


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
    answers = state.get("model_answers") or []
    # the turn's neighbours, and each model answer's evidence (its nearest known references, cited in the answer)
    hits = [SimilarHit.model_validate(raw) for raw in state.get("similar") or []]
    for hit in [*hits, *(h for raw in answers for h in ModelAnswer.model_validate(raw).evidence)]:
        add(hit.label, hit.source, hit.link, hit.name)
    if state.get("properties"):
        add(MoleculeProperties.label, "RDKit", MoleculeProperties.url,
            "descriptors computed locally with RDKit (not looked up)")
    if _query_sequence(state):
        add(BIOPYTHON_LABEL, "Biopython", BIOPYTHON_URL, "length and mass computed locally from the sequence given")
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
    "ec_number": "EC number", "complexity": "complexity", "cas_number": "CAS registry number", "stereocenters": "number of stereocentres",
    "fraction_csp3": "fraction of sp3 carbons", "unlisted": "requested field",
}
#: Attributes a table of several molecules shows when none was asked.
DEFAULT_MOLECULE_COLUMNS = ("molecular_weight", "formula", "logp", "tpsa", "hbond_donors", "hbond_acceptors")
DEFAULT_PROTEIN_COLUMNS = ("gene", "organism", "length", "mass")
_HIGHER = re.compile(r"\b(?:highest|largest|greatest|biggest|most|heaviest|maximum|max|higher|larger|heavier|more|"
                     r"bigger|greater)\b", re.I)
_LOWER = re.compile(r"\b(?:lowest|smallest|least|fewest|lightest|minimum|min|lower|smaller|lighter|less|fewer)\b",
                    re.I)


#: Attributes with their own comparative words (more, fewer): (higher, lower).
_COMPARATIVES = {"length": ("longer", "shorter"), "molecular_weight": ("heavier", "lighter"),
                 "mass": ("heavier", "lighter"), "exact_mass": ("heavier", "lighter")}
#: A yes/no comparison ("is X heavier than Y?", "does X have more donors than Y?").
_YES_NO_THAN = re.compile(r"^\s*(?:is|are|does|do|has|have|was)\b.*\bthan\b", re.I | re.S)
#: Attributes that are counts ("has 3 heavy atoms").
_COUNTS = frozenset({"hbond_donors", "hbond_acceptors", "rotatable_bonds", "rings", "aromatic_rings", "heavy_atoms",
                     "stereocenters"})


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
        record = self.protein or self.compound or self.properties
        return record.name if record is not None else "?"

    @property
    def smiles(self) -> str | None:
        if self.compound and (self.compound.smiles or self.compound.connectivity_smiles):
            return self.compound.smiles or self.compound.connectivity_smiles
        return self.properties.smiles if self.properties else None

    def value(self, attribute: str) -> Fact | None:
        """``attribute`` from the record that holds it: UniProt for a protein, else PubChem, else RDKit.

        The same question means another field for the other kind of entity ("mass" of a protein is its
        UniProt mass, "function" of a drug its description): ``CROSS_KIND`` maps it.
        """
        attribute = CROSS_KIND[self.kind].get(attribute, attribute)
        for record in (self.protein, self.compound, self.properties):
            if record is not None:
                fact = record.get(attribute)
                if fact is not None:
                    return fact
                if record is self.protein:
                    return None
        return None

    def number(self, attribute: str) -> float | None:
        """The attribute as a number, for rankings (None when absent or not numeric)."""
        found = self.value(attribute)
        if found is None:
            return None
        match = re.match(r"^-?[\d,]+(?:\.\d+)?", found.value)
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

    # A structure the question named ("naproxen (COc1…)") is called by that name
    named = {}
    for raw in state.get("entities") or []:
        entity = raw if isinstance(raw, Mapping) else getattr(raw, "model_dump", dict)()
        if entity.get("name") and entity.get("source") == "smiles":
            named[canonical(entity.get("value"))] = entity["name"]
    computed, by_smiles = [], {}
    for raw in state.get("properties") or []:
        record = MoleculeProperties.model_validate(raw)
        key = canonical(record.smiles)  # parsed once per record
        if not record.title and key in named:
            record = record.model_copy(update={"title": named[key]})
        computed.append(record)
        by_smiles[key] = record
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
    if attribute == "unlisted":
        record = subject.protein or subject.compound or subject.properties
        holds = ("UniProt's entry" if subject.protein else "PubChem's record" if subject.compound
                 else "the RDKit descriptors")
        cite = f" [{record.label}]" if record is not None else ""
        return (f"That field is not available: {holds} for {subject.name}, as this assistant reads it, does not "
                f"include it{cite}.")
    if found is not None:
        value, label, field = found
        if attribute == "rule_of_five":
            return f"{subject.name} {value} [{label}]."
        if attribute in ("function", "description"):
            return f"{field.capitalize()} of {subject.name}: {value} [{label}]."
        if attribute in _COUNTS:
            noun = field[:-1] if value == "1" and field.endswith("s") else field
            return f"{subject.name} has {value} {noun} [{label}]."
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
            cells.append(found.value.replace("|", "/")[:60] if found else "not available")
            if found and found.label not in labels:
                labels.append(found.label)
        lines.append(f"| {subject.name} | " + " | ".join(cells) + " | " + " ".join(f"[{x}]" for x in labels) + " |")
    return "\n".join(lines)


#: "how many nitrogen atoms": the element a count of atoms asks for (answered from the record's formula).
_ELEMENTS = {"hydrogen": "H", "carbon": "C", "nitrogen": "N", "oxygen": "O", "fluorine": "F", "phosphorus": "P",
             "sulfur": "S", "sulphur": "S", "chlorine": "Cl", "bromine": "Br", "iodine": "I", "boron": "B",
             "silicon": "Si", "selenium": "Se", "sodium": "Na", "potassium": "K"}
_ELEMENT_ASKED = re.compile(r"\b(" + "|".join(_ELEMENTS) + r")(?:s|\s+atoms?)?\b", re.I)


def _element_sentence(subject: Subject, element: str) -> str:
    """How many atoms of one element, counted in the record's molecular formula (cited as the formula is)."""
    found = subject.value("formula")
    if found is None:
        return _attribute_sentence(subject, "formula", False)
    symbol = _ELEMENTS[element.lower()]
    count = sum(int(n or 1) for sym, n in re.findall(r"([A-Z][a-z]?)(\d*)", found.value) if sym == symbol)
    noun = f"{element.lower()} atom" + ("" if count == 1 else "s")
    return f"{subject.name} has {count} {noun} (formula {found.value}) [{found.label}]."


def _shown(subject: Subject) -> str:
    """A subject as a ranking names it: a protein with its accession too ("… deacetylase (P0DTR4)")."""
    return f"{subject.name} ({subject.protein.accession})" if subject.protein else subject.name


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
    wording = ATTRIBUTE_NAMES.get(attribute, attribute)
    labels = " ".join(dict.fromkeys(f"[{v.value(attribute).label}]" for _, v, _ in ranked))
    if len({fmt(n) for n, _, _ in ranked}) == 1:
        names = ", ".join(_shown(s) for _, _, s in ranked[:-1]) + f" and {_shown(ranked[-1][2])}"
        return f"{names} have the same {wording} ({fmt(ranked[0][0])}){mixed} {labels}."
    asked_first = ranked[0][2]  # the subject named first, before sorting
    ranked.sort(key=lambda item: item[0], reverse=True)
    labels = " ".join(dict.fromkeys(f"[{v.value(attribute).label}]" for _, v, _ in ranked))
    order = " > ".join(f"{_shown(s)} ({fmt(n)})" for n, _, s in ranked)
    n, _, s = ranked[-1] if direction == "lowest" else ranked[0]
    if len(ranked) == 2:
        (high, _, top), (low, _, bottom) = ranked
        comparative = "lower" if direction == "lowest" else "higher"
        first, second = (bottom, top) if direction == "lowest" else (top, bottom)
        if fmt(high) == fmt(low):
            return f"{_shown(top)} and {_shown(bottom)} have the same {wording} ({fmt(high)}){mixed} {labels}."
        gap = f", a difference of {fmt(round(high - low, 4))}" if isinstance(high, float) else \
            f", a difference of {high - low}"
        verdict = ""
        if _YES_NO_THAN.search(question):  # "is X heavier than Y?": answer yes or no about X
            verdict = "Yes: " if first is asked_first else "No: "
        if attribute in _COMPARATIVES:  # "is longer than", "is heavier than": how people say it
            word = _COMPARATIVES[attribute][direction == "lowest"]
            other = bottom if first is top else top
            return f"{verdict}{_shown(first)} is {word} than {_shown(other)}{mixed}: {wording} {order}{gap} {labels}."
        return (f"{verdict}{_shown(first)} has the {comparative} {wording}{mixed}: {order}{gap} {labels}.")
    return f"{_shown(s)} has the {direction} {wording} ({fmt(n)}){mixed}; by {wording}: {order} {labels}."


#: How a Morgan (radius 2) Tanimoto similarity reads in words: at or above HIGH "closely related", at or above
#: MODERATE "related" (about where analogues start to share activity), below it "dissimilar".
SIMILARITY_HIGH = 0.7
SIMILARITY_MODERATE = 0.4


def _similarity_pair(subjects: list[Subject]) -> str | None:
    from biomedgpt.core.chem import tanimoto

    structures = [(s.name, s.smiles) for s in subjects if s.smiles]
    if len(structures) < 2:
        return None
    (name_a, a), (name_b, b) = structures[:2]
    score = tanimoto(a, b)
    keys = [s.value("inchikey") for s in subjects if s.smiles][:2]
    same = all(keys) and keys[0].value == keys[1].value
    reading = ("they are the same molecule (identical InChIKey)" if same else
               "high: closely related structures" if score >= SIMILARITY_HIGH else
               "moderate: related structures" if score >= SIMILARITY_MODERATE else
               "low: structurally dissimilar")
    return (f"The Tanimoto similarity of {name_a} and {name_b} is {score:.2f} (Morgan fingerprints, radius 2, "
            f"2048 bits) [RDKit]; {reading}.")


def _evidence_hits(hits: list[dict], min_molecule: float, max_evalue: float = 1e-5) -> tuple[list[SimilarHit], int]:
    """Neighbours close enough to be evidence, and how many were dropped as too distant. An alignment hit (one
    with an E-value: proteins, model/alignment.py) is judged by its E-value, never by a similarity floor."""
    parsed = [SimilarHit.model_validate(raw) for raw in hits]
    kept = [hit for hit in parsed
            if hit.is_evidence(min_molecule if hit.kind == "molecule" else PROTEIN_NEIGHBOUR_FLOOR, max_evalue)]
    return kept, len(hits) - len(kept)


def _no_homologue(hits: list[dict], max_evalue: float) -> str:
    """'No close homologue' said plainly, with the best alignment there was (if phmmer reported any)."""
    best = min((SimilarHit.model_validate(raw) for raw in hits), key=lambda h: h.evalue or 0.0, default=None)
    found = (f" (best E-value {evalue_text(best.evalue)}, {best.name or best.id} [{best.label}])"
             if best is not None and best.evalue is not None else "")
    return (f"No close homologue in the reference{found}: no alignment reaches the E-value cutoff "
            f"{evalue_text(max_evalue)}, so no protein is shown as evidence.")


#: 3-mer cosine below which a protein neighbour is no evidence (random pairs score 0.05–0.15).
PROTEIN_NEIGHBOUR_FLOOR = 0.5


#: Above this similarity a passage is relevant on meaning alone. Between the floor and this it must also mention
#: one of the specific topics the question names: a near miss ("genetics of hemophilia" scores 0.49 against hemochromatosis
#: abstracts in a store with no hemophilia paper) is not evidence.
LITERATURE_SURE_SCORE = 0.6


def _stem(word: str) -> str:
    """A crude spelling-tolerant stem: British/American spellings and inflections meet ("tumours" ~ "tumor")."""
    word = word.lower().replace("ae", "e").replace("oe", "e").replace("our", "or")
    return word if len(word) <= 3 else word[:5]


def _topics(question: str) -> list[set[str]]:
    """The topics a literature question names (each a set of word stems), e.g. [{"genet"}, {"hemop"}]."""
    from biomedgpt.agent.understanding import example_table, find_names

    groups = []
    for name, _, _ in find_names(question, example_table().vocabulary):
        stems = {_stem(w) for w in re.findall(r"[A-Za-z0-9]+", name) if len(w) >= 3}
        if stems:
            groups.append(stems)
    return groups


#: Stems of words too common in biomedical text to tell one topic from another ("genetics of hemophilia").
_GENERIC_STEMS = frozenset(_stem(w) for w in """genetics genetic gene genes mutation mutations mutant variant variants
patients patient study studies clinical treatment therapy therapies disease diseases disorder disorders cancer
cancers tumor tumour tumors risk human humans cell cells cellular protein proteins expression population
populations family families familial inheritance inherited hereditary syndrome role function mechanism mechanisms
molecular analysis effect effects association associated research review evidence recent latest new papers
paper articles article literature""".split())


def _mentions_topics(passage: Passage, topics: list[set[str]]) -> bool:
    """True when the passage names one of the question's specific topics (or the question names none)."""
    specific = [group - _GENERIC_STEMS for group in topics]
    specific = [group for group in specific if group]
    if not specific:
        return True
    words = {_stem(w) for w in re.findall(r"[A-Za-z0-9]+", f"{passage.title or ''} {passage.text}") if len(w) >= 3}
    return any(group & words for group in specific)


def _literature_lines(passages: list[dict], min_score: float, searched: int | None, question: str = "") -> list[str]:
    relevant = [Passage.model_validate(p) for p in passages if float(p.get("score") or 0) >= min_score]
    if question and any(p.score < LITERATURE_SURE_SCORE for p in relevant):
        topics = _topics(question)
        relevant = [p for p in relevant if p.score >= LITERATURE_SURE_SCORE or _mentions_topics(p, topics)]
    if not relevant:
        counted = f" ({searched:,} chunks searched)" if searched else ""
        return [f"No relevant passage in the literature store{counted}: nothing scored above the relevance floor "
                f"({min_score:.2f}) while naming the question's topic."]
    seen: set[str] = set()
    lines = ["**From the literature**"]
    for p in relevant:
        if p.label in seen:
            continue  # one entry per document
        seen.add(p.label)
        lines += p.markdown()
        if len(seen) >= 4:
            break
    return lines


def _query_sequence(state: Mapping[str, Any]) -> str:
    """The protein sequence the question gave (the current subject), or ""."""
    entity = state.get("entity") or {}
    entity = entity if isinstance(entity, Mapping) else entity.model_dump()
    if entity.get("kind") == "protein" and entity.get("source") == "sequence":
        return str(entity.get("value") or "")
    for raw in state.get("model_answers") or []:
        seen = ModelAnswer.model_validate(raw).inputs.get("sequence")
        if seen:
            return str(seen)
    return ""


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
    if intent == "invalid":
        return state.get("problem") or "I can't read the structure in that question."
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
            element = _ELEMENT_ASKED.search(question)
            lead += [_element_sentence(subject, element.group(1)) if a in ("heavy_atoms", "unlisted") and element
                     else _attribute_sentence(subject, a, offline) for a in attributes]
        if len(subjects) > 1 and (_HIGHER.search(question) or _LOWER.search(question)):
            lead = [r for r in (_ranking(subjects, a, question) for a in attributes) if r] + lead
        if len(subjects) > 1 and len(attributes) > 0:
            parts.append(" ".join(lead))
            parts.append(_table(subjects, attributes))
            lead = []
    if lead:
        parts.append(" ".join(lead))

    sequence = _query_sequence(state)
    if intent in ("describe", "model", "similar", "attribute") and not subjects and sequence:
        mass = sequence_mass(sequence)
        weighed = f", average mass {mass:,.0f} Da" if mass == mass else ""
        parts.insert(0, f"The query is a protein sequence of {len(sequence)} residues{weighed} [{BIOPYTHON_LABEL}].")
    blocks: list[list[str]] = []
    if intent in ("describe", "similar", "model") or (intent in ("attribute", "compare") and not subjects):
        if intent != "model":
            for subject in subjects[:3]:
                for record in (subject.compound, subject.properties, subject.protein):
                    if record is not None:
                        blocks.append(record.markdown())
        max_evalue = getattr(settings, "protein_max_evalue", 1e-5)
        hits, dropped = _evidence_hits(state.get("similar") or [], settings.neighbour_min_similarity, max_evalue)
        if hits:
            kind = "proteins" if hits[0].kind == "protein" else "molecules"
            blocks.append([f"**Nearest known {kind}** (evidence by similarity, not identity; "
                           f"an identical entry is the query itself)" if hits[0].identical else
                           f"**Nearest known {kind}** (evidence by similarity, not identity)"]
                          + [line for hit in hits[:5] for line in hit.markdown()])
        elif any(h.get("evalue") is not None for h in state.get("similar") or []) or (
                not state.get("similar") and (sequence or intent == "similar" and state.get("proteins"))
                and intent != "model" and not any(e.get("name") == "similar_known" for e in errors or [])):
            blocks.append([_no_homologue(state.get("similar") or [], max_evalue)])  # the alignment found nothing close
        elif dropped:
            kind = "protein" if (state.get("similar") or [{}])[0].get("kind") == "protein" else "molecule"
            blocks.append([f"No close known {kind}: the nearest of {dropped} reference structures are below the "
                           "similarity floor, so none is shown as evidence."])
        for raw in (state.get("model_answers") or [])[:2]:
            # model text is secondary: after every database fact, labelled
            blocks.append(ModelAnswer.model_validate(raw).markdown())
    if state.get("passages") or intent == "literature":
        blocks.append(_literature_lines(state.get("passages") or [], settings.literature_min_score,
                                        state.get("searched"), question))
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
