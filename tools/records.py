"""Typed records that tools return and the agent, CLI and notebooks display: ``Compound(...).get("inchikey")``.

``Compound(...).model_dump()`` gives the JSON keys of ``biomedgpt lookup compound --json``; the
field names are public (the README's JSON section), so change them only with a reason.

Why everything about a record lives on its class: a record type owns, in one place, its citation
label and URL, the accessors for the attributes a question may ask (``get(attribute)`` → a cited
``Fact`` or ``None``), its short text for a chat model (``chat_text``), its Markdown lines for the
terminal and composed answers (``markdown``) and its HTML for Jupyter (``html``). ``artifact`` names
the state list that holds it. Adding a tool means one function plus one record type.
"""

from __future__ import annotations

import html as _html
import re
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

from pydantic import BaseModel, Field

from biomedgpt.core.sources import (
    BIOMEDGPT_LABEL,
    MOLECULE_DB_SOURCE_PREFIX,
    RDKIT_LABEL,
    RDKIT_URL,
    chebi20_label,
    doc_label,
    molecule_db_label,
    pmid_label,
    pubchem_label,
    pubchem_url,
    pubmed_url,
    uniprot_label,
    uniprot_url,
)

#: How much of a long text field (function, description, passage) goes into a chat model's text.
CONTENT_CHARS = 400
MODEL_OUTPUT_NOTE = "model output, not a database fact"
UNTRAINED_NOTE = "untrained encoders — not evidence"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\"'])")


class Fact(NamedTuple):
    """One attribute's value as a record states it: ``value`` (text, with units), the citation ``label``,
    and the record's own name for the field (``"XLogP3"``, ``"Crippen logP"``)."""

    value: str
    label: str
    field: str


def fmt(value: Any, digits: int = 2) -> str:
    """A float rounded half-up to ``digits`` decimals, from its shortest decimal form (151.165 -> 151.17, not
    the binary 151.16499… -> 151.16). Trailing zeros are dropped only when the value has no more decimals than
    that (PubChem's XLogP3 1.2 stays "1.2"; RDKit's 1.995 reads "2.00", not "2"); ``-0`` reads ``0``."""
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return str(value)
        exact = Decimal(repr(value))
        text = str(exact.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))
        if -exact.as_tuple().exponent <= digits:
            text = text.rstrip("0").rstrip(".") if "." in text else text
        return text[1:] if text.startswith("-") and not text.strip("-0.") else text
    return str(value)


def snippet(text: str | None, sentences: int = 2, limit: int = 360) -> str:
    """The first sentences of a text, cut at ``limit`` characters on a word boundary."""
    text = " ".join((text or "").split())
    if not text:
        return ""
    out = " ".join(_SENTENCE_END.split(text)[:sentences])
    if len(out) > limit:
        out = out[:limit].rsplit(" ", 1)[0] + " …"
    return out.rstrip(".")


def short(text: str | None, limit: int = CONTENT_CHARS) -> str:
    """``text`` on one line, cut at ``limit`` characters on a word boundary."""
    text = " ".join(str(text or "").split())
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:") + "…"


def _e(value: Any) -> str:
    return _html.escape(str(value if value is not None else ""))


def _table(caption: str, rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(fmt(v, 3) if isinstance(v, float) else v)}</td></tr>"
                   for k, v in rows if v not in (None, "", []))
    return f"<table><caption>{caption}</caption>{body}</table>"


def _fact(value: Any, label: str, field: str, unit: str = "", digits: int = 2) -> Fact | None:
    if value is None or value == "" or value == []:
        return None
    return Fact(f"{fmt(value, digits)}{unit}", label, field)


#: A CAS registry number as PubChem lists it among a compound's synonyms ("50-78-2").
CAS_NUMBER = re.compile(r"\d{2,7}-\d{2}-\d")


class Description(BaseModel):
    """One textual description of a compound, with where it came from."""

    text: str
    source: str = ""
    url: str = ""


class Compound(BaseModel):
    """A PubChem compound. ``smiles`` is the stereo-aware SMILES (PubChem's ``SMILES``)."""

    artifact: ClassVar[str] = "compounds"

    cid: int
    title: str | None = None
    iupac_name: str | None = None
    formula: str | None = None
    molecular_weight: float | None = None
    smiles: str | None = None
    connectivity_smiles: str | None = None
    inchi: str | None = None
    inchikey: str | None = None
    xlogp: float | None = None
    tpsa: float | None = None
    #: PubChem's computed monoisotopic mass, counts, complexity and formal charge (absent in older records).
    exact_mass: float | None = None
    hbond_donors: int | None = None
    hbond_acceptors: int | None = None
    rotatable_bonds: int | None = None
    heavy_atoms: int | None = None
    complexity: float | None = None
    charge: int | None = None
    synonyms: list[str] = Field(default_factory=list)
    descriptions: list[Description] = Field(default_factory=list)
    #: The name the user looked it up by ("triclosan"), when it was found by name.
    asked_as: str | None = None

    @property
    def label(self) -> str:
        return pubchem_label(self.cid)

    @property
    def url(self) -> str:
        return pubchem_url(self.cid)

    @property
    def name(self) -> str:
        """PubChem's title, else the name it was asked by, else its IUPAC name: answers name a compound as
        people do ("triclosan", not "5-chloro-2-(2,4-dichlorophenoxy)phenol")."""
        return self.title or self.asked_as or self.iupac_name or self.label

    def get(self, attribute: str) -> Fact | None:
        label = self.label
        found = {
            "molecular_weight": lambda: _fact(self.molecular_weight, label, "molecular weight", " g/mol"),
            "formula": lambda: _fact(self.formula, label, "formula"),
            "smiles": lambda: _fact(self.smiles or self.connectivity_smiles, label, "SMILES"),
            "inchikey": lambda: _fact(self.inchikey, label, "InChIKey"),
            "inchi": lambda: _fact(self.inchi, label, "InChI"),
            "iupac_name": lambda: _fact(self.iupac_name, label, "IUPAC name"),
            "cid": lambda: _fact(self.cid, label, "CID"),
            "cas_number": lambda: _fact(next((x for x in self.synonyms if CAS_NUMBER.fullmatch(x)), None), label,
                                        "CAS registry number"),
            "synonyms": lambda: _fact("; ".join(self.synonyms[:10]), label, "synonyms"),
            "logp": lambda: _fact(self.xlogp, label, "XLogP3"),
            "tpsa": lambda: _fact(self.tpsa, label, "TPSA", " Å²"),
            "exact_mass": lambda: _fact(self.exact_mass, label, "monoisotopic mass", " Da", 4),
            "hbond_donors": lambda: _fact(self.hbond_donors, label, "H-bond donors"),
            "hbond_acceptors": lambda: _fact(self.hbond_acceptors, label, "H-bond acceptors"),
            "rotatable_bonds": lambda: _fact(self.rotatable_bonds, label, "rotatable bonds"),
            "heavy_atoms": lambda: _fact(self.heavy_atoms, label, "heavy atoms"),
            "complexity": lambda: _fact(self.complexity, label, "complexity"),
            "charge": lambda: _fact(self.charge, label, "formal charge"),
            "description": lambda: _fact(snippet(self.descriptions[0].text, 3, 600) if self.descriptions else None,
                                         label, "description"),
        }.get(attribute)
        return found() if found else None

    def chat_text(self) -> str:
        """One compound as a short cited paragraph for a chat model."""
        parts = [f"{self.name} [{self.label}]"]
        for key, wording in (("formula", "formula"), ("molecular_weight", "molecular weight"), ("smiles", "SMILES"),
                             ("iupac_name", "IUPAC name"), ("logp", "XLogP"), ("tpsa", "TPSA"),
                             ("inchikey", "InChIKey")):
            fact = self.get(key)
            if fact and not (key == "iupac_name" and self.iupac_name == self.name):
                parts.append(f"{wording} {fact.value}")
        text = "PubChem: " + "; ".join(parts) + "."
        if self.synonyms:
            text += " Synonyms: " + ", ".join(self.synonyms[:5]) + "."
        if self.descriptions:
            d = self.descriptions[0]
            text += f" Description ({d.source or 'PubChem'}): {short(d.text)}"
        return text

    def markdown(self) -> list[str]:
        cite = f"[{self.label}]"
        lines = [f"**{self.name}** ({self.label})"]
        facts = [f"{f.field} {f.value}" for f in (self.get("formula"), self.get("molecular_weight")) if f]
        if facts:
            lines.append(f"- {self.name} has {', '.join(facts)} {cite}.")
        if self.iupac_name and self.iupac_name != self.name:
            lines.append(f"- IUPAC name: {self.iupac_name} {cite}.")
        if self.smiles:
            lines.append(f"- SMILES: `{self.smiles}` {cite}.")
        extra = [f"{f.field} {f.value}" for f in (self.get("logp"), self.get("tpsa")) if f]
        if extra:
            lines.append(f"- {', '.join(extra)} {cite}.")
        for description in self.descriptions[:2]:
            origin = f" (from {description.source})" if description.source else ""
            lines.append(f"- {snippet(description.text)}{origin} {cite}.")
        if not self.descriptions:
            lines.append(f"- PubChem's record has no description of {self.name} {cite}.")
        return lines

    def html(self) -> str:
        caption = f'<a href="{_e(self.url)}" target="_blank">{_e(self.name)} [{_e(self.label)}]</a>'
        return _table(caption, [("formula", self.formula), ("molecular weight (g/mol)", self.molecular_weight),
                                ("IUPAC name", self.iupac_name), ("InChIKey", self.inchikey), ("XLogP3", self.xlogp),
                                ("TPSA (Å²)", self.tpsa), ("synonyms", ", ".join(self.synonyms[:5]))])


class ProteinEntry(BaseModel):
    """A UniProtKB entry, reduced to what a scientist asks about."""

    artifact: ClassVar[str] = "proteins"

    accession: str
    entry_name: str | None = None
    reviewed: bool | None = None
    protein_name: str | None = None
    gene_names: list[str] = Field(default_factory=list)
    organism: str | None = None
    taxon_id: int | None = None
    function: str | None = None
    subcellular_locations: list[str] = Field(default_factory=list)
    family: str | None = None
    sequence: str | None = None
    length: int | None = None
    mass: int | None = None
    go_terms: list[str] = Field(default_factory=list)
    pdb_ids: list[str] = Field(default_factory=list)
    #: Diseases of UniProt's DISEASE comments ("Alzheimer disease 1 (AD1)").
    diseases: list[str] = Field(default_factory=list)
    #: UniProt keywords ("3D-structure", "Alzheimer disease", ...).
    keywords: list[str] = Field(default_factory=list)
    #: Enzyme Commission numbers of the recommended and alternative names ("3.5.1.-": a partial class).
    ec_numbers: list[str] = Field(default_factory=list)

    @property
    def label(self) -> str:
        return uniprot_label(self.accession)

    @property
    def url(self) -> str:
        return uniprot_url(self.accession)

    @property
    def name(self) -> str:
        return self.protein_name or self.entry_name or self.accession

    def get(self, attribute: str) -> Fact | None:
        label = self.label

        def listed(values: list[str], most: int, sep: str = ", ") -> str | None:
            if not values:
                return None
            more = f" (and {len(values) - most} more; {len(values)} in all)" if len(values) > most else ""
            return sep.join(values[:most]) + more

        found = {
            "function": (self.function, "function"), "gene": (listed(self.gene_names, 4), "gene"),
            "organism": (self.organism, "organism"),
            "length": (f"{self.length} amino acids" if self.length else None, "length"),
            "mass": (f"{self.mass:,} Da" if self.mass else None, "mass"),
            "subcellular_location": (listed(self.subcellular_locations, 8), "subcellular location"),
            "family": (self.family, "family"), "diseases": (listed(self.diseases, 10, "; "), "associated diseases"),
            "go_terms": (listed(self.go_terms, 12, "; "), "GO terms"),
            "pdb_structures": (listed(self.pdb_ids, 15), "PDB structures"),
            "keywords": (listed(self.keywords, 15), "UniProt keywords"), "sequence": (self.sequence, "sequence"),
            "reviewed": (None if self.reviewed is None else ("reviewed (Swiss-Prot)" if self.reviewed
                                                             else "unreviewed (TrEMBL)"), "review status"),
            "accession": (self.accession, "UniProt accession"),
            "ec_number": (listed(self.ec_numbers, 6), "EC number"),
        }.get(attribute)
        return _fact(found[0], label, found[1]) if found else None

    def chat_text(self) -> str:
        """One UniProt entry as a short cited paragraph for a chat model."""
        facts = [x for x in (self.get("gene").value if self.get("gene") else None, self.organism,
                             f"{self.length} aa" if self.length else None,
                             f"mass {self.mass} Da" if self.mass else None,
                             self.get("reviewed").value if self.get("reviewed") else None) if x]
        text = f"UniProt: {self.name} [{self.label}]" + (f" ({'; '.join(facts)})" if facts else "") + "."
        if self.function:
            text += f" Function: {short(self.function)}"
        if self.subcellular_locations:
            text += " Subcellular location: " + ", ".join(self.subcellular_locations[:6]) + "."
        if self.family:
            text += f" Family: {short(self.family, 200)}"
        if self.diseases:
            text += " Diseases: " + "; ".join(self.diseases[:5]) + "."
        return text

    def markdown(self) -> list[str]:
        cite = f"[{self.label}]"
        who = ", ".join(x for x in [", ".join(self.gene_names[:2]), self.organism or ""] if x)
        status = self.get("reviewed")
        lines = [f"**{self.name}** ({self.label})"]
        head = f"- {self.accession} is {self.name}" + (f" ({who})" if who else "") + (
            f", {status.value}" if status else "")
        lines.append(f"{head} {cite}.")
        if self.function:
            lines.append(f"- Function: {snippet(self.function, 3, 500)} {cite}.")
        if self.subcellular_locations:
            lines.append(f"- Subcellular location: {', '.join(self.subcellular_locations[:6])} {cite}.")
        if self.family:
            lines.append(f"- Family: {snippet(self.family, 1)} {cite}.")
        if self.diseases:
            lines.append(f"- Associated diseases: {'; '.join(self.diseases[:5])} {cite}.")
        if self.length:
            mass = f", mass {self.mass:,} Da" if self.mass else ""
            lines.append(f"- Length {self.length} amino acids{mass} {cite}.")
        return lines

    def html(self) -> str:
        caption = f'<a href="{_e(self.url)}" target="_blank">{_e(self.label)}</a>'
        return _table(caption, [("name", self.protein_name), ("genes", ", ".join(self.gene_names)),
                                ("organism", self.organism), ("length", self.length), ("family", self.family),
                                ("location", ", ".join(self.subcellular_locations[:6])),
                                ("diseases", "; ".join(self.diseases[:5])), ("function", (self.function or "")[:600])])


class Passage(BaseModel):
    """One chunk of a literature record returned by a search; ``score`` is a similarity (higher is closer)."""

    artifact: ClassVar[str] = "passages"

    text: str
    pmid: str | None = None
    title: str | None = None
    year: int | None = None
    chunk: int = 0
    score: float = 0.0
    #: The file a user-ingested document came from (its name is the citation: ``[Doc notes.md]``).
    source: str | None = None

    @property
    def label(self) -> str:
        if self.pmid:
            return pmid_label(self.pmid)
        return doc_label(Path(self.source).name if self.source else (self.title or "?"))

    @property
    def url(self) -> str:
        return pubmed_url(self.pmid)

    def get(self, attribute: str) -> Fact | None:
        return None  # a passage is evidence to quote, not a record of fields

    def chat_text(self) -> str:
        year = f", {self.year}" if self.year else ""
        title = f"{self.title.rstrip('.')}{year}: " if self.title else ""
        return f"[{self.label}] {title}{short(self.text, 300)} (score {self.score:.2f})"

    def markdown(self) -> list[str]:
        title = f" — {self.title}" + (f" ({self.year})" if self.year else "") if self.title else ""
        return [f"- \u201c{snippet(self.text, 2, 300)}\u201d{title} [{self.label}]."]

    def html(self) -> str:
        link = f'<a href="{_e(self.url)}" target="_blank">[{_e(self.label)}]</a>' if self.url else f"[{_e(self.label)}]"
        return f"<blockquote>{_e(snippet(self.text, 2, 300))} {link}</blockquote>"


class MoleculeProperties(BaseModel):
    """Descriptors computed locally by RDKit (never looked up): label ``[RDKit]``."""

    artifact: ClassVar[str] = "properties"
    label: ClassVar[str] = RDKIT_LABEL
    url: ClassVar[str] = RDKIT_URL

    smiles: str
    formula: str
    average_mass: float
    exact_mass: float
    logp: float
    tpsa: float
    h_bond_donors: int
    h_bond_acceptors: int
    rotatable_bonds: int
    rings: int
    aromatic_rings: int
    heavy_atoms: int
    lipinski_violations: int
    lipinski_pass: bool
    inchikey: str | None = None
    inchi: str | None = None
    formal_charge: int | None = None
    #: The name the structure was asked by, when it was resolved from one ("aspirin"); None for a SMILES.
    title: str | None = None
    #: Tetrahedral stereocentres, assigned or not (RDKit's FindMolChiralCenters), and the fraction of sp3 carbons.
    stereocenters: int | None = None
    fraction_csp3: float | None = None
    #: The SMILES as it was written, when RDKit's canonical form differs (answers name a structure as asked).
    given_smiles: str | None = None
    source: str = "computed locally with RDKit"

    @property
    def name(self) -> str:
        return self.title or f"`{self.given_smiles or self.smiles}`"

    @property
    def rule_of_five(self) -> str:
        violations = f"{self.lipinski_violations} violation{'' if self.lipinski_violations == 1 else 's'}"
        donors = f"{self.h_bond_donors} H-bond donor{'' if self.h_bond_donors == 1 else 's'}"
        acceptors = f"{self.h_bond_acceptors} acceptor{'' if self.h_bond_acceptors == 1 else 's'}"
        values = f"MW {fmt(self.average_mass)}, logP {fmt(self.logp)}, {donors}, {acceptors}"
        return f"{'passes' if self.lipinski_pass else 'fails'} Lipinski's rule of five ({violations}: {values})"

    def get(self, attribute: str) -> Fact | None:
        found = {
            "molecular_weight": (self.average_mass, "average molecular weight", " g/mol", 2),
            "exact_mass": (self.exact_mass, "exact mass", " Da", 4), "formula": (self.formula, "formula", "", 2),
            "smiles": (self.smiles, "canonical SMILES", "", 2), "inchikey": (self.inchikey, "InChIKey", "", 2),
            "inchi": (self.inchi, "InChI", "", 2), "logp": (self.logp, "Crippen logP", "", 2),
            "tpsa": (self.tpsa, "TPSA", " Å²", 2), "hbond_donors": (self.h_bond_donors, "H-bond donors", "", 2),
            "hbond_acceptors": (self.h_bond_acceptors, "H-bond acceptors", "", 2),
            "rotatable_bonds": (self.rotatable_bonds, "rotatable bonds", "", 2), "rings": (self.rings, "rings", "", 2),
            "aromatic_rings": (self.aromatic_rings, "aromatic rings", "", 2),
            "heavy_atoms": (self.heavy_atoms, "heavy atoms", "", 2), "charge": (self.formal_charge, "formal charge", "", 2),
            "rule_of_five": (self.rule_of_five, "rule of five", "", 2),
            "stereocenters": (self.stereocenters, "stereocentres", "", 2),
            "fraction_csp3": (self.fraction_csp3, "fraction of sp3 carbons (Fsp3)", "", 2),
        }.get(attribute)
        return _fact(found[0], self.label, found[1], found[2], found[3]) if found else None

    def chat_text(self) -> str:
        return (
            f"Computed locally with RDKit (not looked up) for {self.smiles} [RDKit]: formula {self.formula}; "
            f"average mass {self.average_mass:.2f} g/mol; exact mass {self.exact_mass:.4f}; Crippen logP "
            f"{self.logp:.2f}; TPSA {self.tpsa:.1f} Å²; H-bond donors {self.h_bond_donors}, acceptors "
            f"{self.h_bond_acceptors}; rotatable bonds {self.rotatable_bonds}; rings {self.rings} "
            f"({self.aromatic_rings} aromatic); heavy atoms {self.heavy_atoms}; InChIKey {self.inchikey}; "
            f"Lipinski's rule of five: {'passes' if self.lipinski_pass else 'fails'} "
            f"({self.lipinski_violations} violations)."
        )

    def markdown(self) -> list[str]:
        return [
            f"**Computed properties** of `{self.smiles}` (computed locally with RDKit, not looked up)",
            f"- Formula {self.formula}, average mass {fmt(self.average_mass)} Da, exact mass "
            f"{fmt(self.exact_mass, 4)} Da [RDKit].",
            f"- Crippen logP {fmt(self.logp)}, TPSA {fmt(self.tpsa)} Å², H-bond donors {self.h_bond_donors}, "
            f"acceptors {self.h_bond_acceptors}, rotatable bonds {self.rotatable_bonds} [RDKit].",
            f"- Rings {self.rings} (aromatic {self.aromatic_rings}), heavy atoms {self.heavy_atoms} [RDKit].",
            f"- Lipinski's rule of five: {self.rule_of_five.split(' ', 1)[0]} ({self.lipinski_violations} violation"
            f"{'' if self.lipinski_violations == 1 else 's'}) [RDKit].",
        ]

    def html(self) -> str:
        rows = [("formula", self.formula), ("average mass (Da)", self.average_mass),
                ("exact mass (Da)", self.exact_mass), ("Crippen logP", self.logp), ("TPSA (Å²)", self.tpsa),
                ("H-bond donors", self.h_bond_donors), ("H-bond acceptors", self.h_bond_acceptors),
                ("rotatable bonds", self.rotatable_bonds), ("rings / aromatic", f"{self.rings} / {self.aromatic_rings}"),
                ("InChIKey", self.inchikey),
                ("Lipinski", "passes" if self.lipinski_pass else f"fails ({self.lipinski_violations})")]
        return _table(f"Computed with RDKit: <code>{_e(self.smiles)}</code> [RDKit]", rows)


def evalue_text(value: float | None) -> str:
    """An E-value as people write it: '3e-45', '0.0021', '0.31' ('< 1e-300' when it underflowed to 0)."""
    if value is None:
        return "n/a"
    if value == 0:
        return "< 1e-300"
    return f"{value:.2g}" if value >= 1e-3 else f"{value:.0e}"


class SimilarHit(BaseModel):
    """A nearest known molecule or protein, with its description and similarity in [0, 1]."""

    artifact: ClassVar[str] = "similar"

    kind: str  # "molecule" | "protein"
    id: str  # ChEBI-20 CID, PubChem CID or UniProt accession
    name: str | None = None
    smiles: str | None = None
    sequence: str | None = None
    description: str = ""
    similarity: float  # an alignment hit's is its identity
    source: str  # e.g. "ChEBI-20 reference", "PubChem fastsimilarity_2d", "Swiss-Prot reference"
    url: str = ""
    # Protein hits found by alignment (model/alignment.py, phmmer): the E-value is what makes a homologue
    evalue: float | None = None
    identity: float | None = None  # identical residues / aligned columns
    coverage: float | None = None  # the aligned fraction of the query
    evalue_cutoff: float | None = None  # protein_max_evalue in force when searched; above it: no evidence

    @property
    def significant(self) -> bool:
        """False only for an alignment hit above the E-value cutoff it was searched with: shown as the best
        there was, never as a homologue."""
        return self.evalue is None or self.evalue_cutoff is None or self.evalue <= self.evalue_cutoff

    def is_evidence(self, min_similarity: float, max_evalue: float | None = None) -> bool:
        """Close enough to be evidence: an alignment hit by its E-value (at most ``max_evalue``, by default the
        cutoff it was searched with), never by a similarity floor; any other hit by ``min_similarity``."""
        if self.evalue is not None:
            cutoff = self.evalue_cutoff if max_evalue is None else max_evalue
            return cutoff is None or self.evalue <= cutoff
        return self.similarity >= min_similarity

    def alignment_text(self) -> str:
        """'E-value 3e-45, 98 % identity over 100 % of the query' ('' for a hit not found by alignment)."""
        if self.evalue is None:
            return ""
        text = f"E-value {evalue_text(self.evalue)}"
        if self.identity is not None and self.coverage is not None:
            text += f", {self.identity * 100:.0f} % identity over {self.coverage * 100:.0f} % of the query"
        if not self.significant:
            text = f"not a close homologue: {text}, above the cutoff {evalue_text(self.evalue_cutoff)}"
        return text

    @property
    def label(self) -> str:
        if self.kind == "protein":
            return uniprot_label(self.id)
        if "chebi" in self.source.lower() and self.id.isdigit():
            return chebi20_label(self.id)  # its text comes from ChEBI-20, not from PubChem
        if self.source.startswith(MOLECULE_DB_SOURCE_PREFIX):  # a BIOMEDGPT_MOLECULE_DB file's own ids, digits or not
            return molecule_db_label(self.source, self.id)
        return pubchem_label(self.id) if self.id.isdigit() else f"{self.source} {self.id}"

    @property
    def link(self) -> str:
        if self.url:
            return self.url
        if self.kind == "protein":
            return uniprot_url(self.id)
        return pubchem_url(self.id)

    def get(self, attribute: str) -> Fact | None:
        return None  # a neighbour is evidence by similarity, never a value of the query

    def chat_text(self) -> str:
        name = f" {self.name}" if self.name else ""
        how = self.alignment_text() or f"similarity {self.similarity:.2f}"
        return f"[{self.label}]{name} ({how}, {self.source}): {short(self.description, 250)}"

    @property
    def identical(self) -> bool:
        """The query itself (same structure or sequence), found in the reference; an alignment hit must also
        cover the whole query."""
        return self.similarity >= 0.9995 and (self.coverage is None or self.coverage >= 0.9995)

    @property
    def title(self) -> str:
        """Its name, else "CID 2244" or the accession."""
        return self.name or (f"CID {self.id}" if self.kind == "molecule" and self.id.isdigit() else self.id)

    def markdown(self) -> list[str]:
        name = self.title
        described = f": {snippet(self.description, 1, 240)}" if self.description else ""
        how = self.alignment_text() or f"similarity {self.similarity:.2f}"
        if self.identical:
            how = "identical to the query" + (f", E-value {evalue_text(self.evalue)}" if self.evalue is not None else "")
        return [f"- {name} ({how}, {self.source}){described} [{self.label}]."]

    def html(self) -> str:
        how = self.alignment_text() or f"{self.similarity:.2f}"
        return f"<li>{_e(self.name or self.id)} ({_e(how)}): {_e(snippet(self.description, 1, 240))} " \
               f"[{_e(self.label)}]</li>"


class ModelAnswer(BaseModel):
    """What the BioMedGPT model said, and exactly what it saw. Always labelled ``[BioMedGPT]``."""

    artifact: ClassVar[str] = "model_answers"
    label: ClassVar[str] = BIOMEDGPT_LABEL
    #: Model text beyond this many characters is cut in answers (the full text stays in the artifact).
    text_limit: ClassVar[int] = 600

    text: str
    question: str
    inputs: dict = Field(default_factory=dict)  # e.g. {"smiles": ..., "atoms": 13} or {"sequence": ..., "residues": 770}
    prompt: str = ""
    model: str = ""
    trained: bool = True
    note: str = ""
    #: The nearest known references of the structure (molecules by Tanimoto, proteins by alignment), best first,
    #: shown before the model's text: they are the evidence. Issue 15: the mini model's descriptions score below
    #: copying the nearest reference's, so the reference is what an answer rests on, never the model's paraphrase.
    evidence: list[SimilarHit] = Field(default_factory=list)
    #: Similarity below which a reference is no evidence (``neighbour_min_similarity`` when the tool ran).
    evidence_floor: float = 0.0
    #: Whether references were searched at all (False: a model answer recorded before issue 15, or a caller's own).
    evidence_searched: bool = False

    @property
    def caveat(self) -> str:
        return MODEL_OUTPUT_NOTE if self.trained else f"{MODEL_OUTPUT_NOTE}; {UNTRAINED_NOTE}"

    def get(self, attribute: str) -> Fact | None:
        return None  # model text is never a value of a record

    def evidence_lines(self) -> list[str]:
        """The nearest known references that are evidence (similarity at or above the floor, alignments within
        their E-value cutoff), or a plain statement that none is; nothing when none was searched."""
        if not self.evidence_searched:
            return []
        close = [hit for hit in self.evidence if hit.is_evidence(self.evidence_floor)]
        if close:
            return [line for hit in close for line in hit.markdown()]
        if not self.evidence:
            return ["- No known reference resembles this structure, so no record backs the text below."]
        best = self.evidence[0]
        if best.evalue is not None:
            return [f"- No close homologue: the best alignment ({best.title}, {best.alignment_text()}) is "
                    "not significant, so no record backs the text below."]
        return [f"- No close reference: the nearest ({best.title}, similarity {best.similarity:.2f}) is "
                f"below {self.evidence_floor:.2f}, so no record backs the text below."]

    def chat_text(self) -> str:
        flag = f"; {self.note}" if self.note else ""
        seen = self.inputs.get("canonical_smiles") or self.inputs.get("sequence", "")
        seen = seen if len(seen) <= 60 else seen[:57] + "..."
        evidence = " ".join(line.lstrip("- ") for line in self.evidence_lines())
        evidence = f"Evidence, the nearest known references: {evidence} " if evidence else ""
        return (f"{evidence}[BioMedGPT] model output from {self.model or 'BioMedGPT'} (generated text, not a "
                f"database fact{flag}); input {seen}: {self.text}")

    def markdown(self) -> list[str]:
        saw = ", ".join(f"{k}={fmt(v)}" for k, v in self.inputs.items()
                        if k != "sequence" and not isinstance(v, (dict, list)) and len(str(v)) <= 40)
        if "sequence" in self.inputs:
            saw = ", ".join(x for x in [saw, f"a protein sequence of {len(str(self.inputs['sequence']))} residues"]
                            if x)
        lines = []
        evidence = self.evidence_lines()
        if evidence:
            lines += ["**Nearest known references** (the evidence; the model's text below is not checked against "
                      "them)", *evidence, ""]  # a blank line: the heading below is not part of the last item
        lines.append(f"**BioMedGPT model output** ({self.caveat}{'; input: ' + saw if saw else ''})")
        text = " ".join(self.text.split()) or "(the model returned no text)"
        if len(text) > self.text_limit:
            text = text[:self.text_limit].rsplit(" ", 1)[0] + " …"
        lines.append(f"- The model says: \u201c{text}\u201d [BioMedGPT].")
        if self.note:
            lines.append(f"- {self.note} [BioMedGPT].")
        return lines

    def html(self) -> str:
        return f'<div class="model"><b>BioMedGPT</b> ({_e(self.caveat)}): {_e(self.text)}</div>'


#: Every record type by the state list that holds it (the graph state's artifact kinds).
RECORD_TYPES: dict[str, type[BaseModel]] = {cls.artifact: cls for cls in
                                            (Compound, MoleculeProperties, ProteinEntry, ModelAnswer, SimilarHit,
                                             Passage)}
