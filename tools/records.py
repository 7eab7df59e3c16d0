"""Typed records that tools return and the agent, CLI and notebooks display.

``Compound(...).model_dump()`` gives the JSON keys of ``biomedgpt lookup compound --json``; the
field names are public (see docs/architecture.md), so change them only with a reason.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field


class Description(BaseModel):
    """One textual description of a compound, with where it came from."""

    text: str
    source: str = ""
    url: str = ""


class Compound(BaseModel):
    """A PubChem compound. ``smiles`` is the stereo-aware SMILES (PubChem's ``SMILES``)."""

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
    synonyms: list[str] = Field(default_factory=list)
    descriptions: list[Description] = Field(default_factory=list)

    @property
    def label(self) -> str:
        return f"PubChem CID {self.cid}"

    @property
    def url(self) -> str:
        return f"https://pubchem.ncbi.nlm.nih.gov/compound/{self.cid}"


class ProteinEntry(BaseModel):
    """A UniProtKB entry, reduced to what a scientist asks about."""

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

    @property
    def label(self) -> str:
        return f"UniProt {self.accession}"

    @property
    def url(self) -> str:
        return f"https://www.uniprot.org/uniprotkb/{self.accession}/entry"


class Passage(BaseModel):
    """One chunk of a literature record returned by a search; ``score`` is a similarity (higher is closer)."""

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
            return f"PMID {self.pmid}"
        return f"Doc {Path(self.source).name if self.source else (self.title or '?')}"

    @property
    def url(self) -> str:
        return f"https://pubmed.ncbi.nlm.nih.gov/{self.pmid}/" if self.pmid else ""


class MoleculeProperties(BaseModel):
    """Descriptors computed locally by RDKit (never looked up): label ``[RDKit]``."""

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
    source: str = "computed locally with RDKit"


class SimilarHit(BaseModel):
    """A nearest known molecule or protein, with its description and similarity in [0, 1]."""

    kind: str  # "molecule" | "protein"
    id: str  # ChEBI-20 CID, PubChem CID or UniProt accession
    name: str | None = None
    smiles: str | None = None
    sequence: str | None = None
    description: str = ""
    similarity: float
    source: str  # e.g. "ChEBI-20 reference", "PubChem fastsimilarity_2d", "Swiss-Prot reference"
    url: str = ""


class ModelAnswer(BaseModel):
    """What the BioMedGPT model said, and exactly what it saw. Always labelled ``[BioMedGPT]``."""

    text: str
    question: str
    inputs: dict = Field(default_factory=dict)  # e.g. {"smiles": ..., "atoms": 13} or {"sequence": ..., "residues": 770}
    prompt: str = ""
    model: str = ""
    trained: bool = True
    note: str = ""
