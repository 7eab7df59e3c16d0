"""Citation labels and links, defined once: ``pubchem_label(2244)`` → ``"PubChem CID 2244"``.

Why one module: an answer cites each fact by a bracketed label (``[PubChem CID 2244]``,
``[UniProt P05067]``, ``[PMID 12345678]``, ``[ChEBI-20 CID 2244]``, ``[RDKit]``, ``[BioMedGPT]``,
``[Doc notes.md]``, ``[molecule reference refs.smi 42]``), the records build those labels and their links,
and the answer checks keep only citations that look like one (``LABEL_PATTERN``). When the records, the
similarity tool, the PubChem client and the answer check spell them from one place, a label the records
write is always one the check accepts.
"""

from __future__ import annotations

import re

#: Locally computed descriptors (never looked up).
#: UniProt's accession pattern (https://www.uniprot.org/help/accession_numbers), unanchored: the one
#: definition the recogniser (agent/entities) and the client (tools/uniprot) build their regexes from.
UNIPROT_ACCESSION = r"(?:[OPQ][0-9][A-Z0-9]{3}[0-9]|[A-NR-Z][0-9](?:[A-Z][A-Z0-9]{2}[0-9]){1,2})"

RDKIT_LABEL = "RDKit"
RDKIT_URL = "https://www.rdkit.org"
#: Values computed locally from a protein sequence the user gave (Biopython's ProtParam).
BIOPYTHON_LABEL = "Biopython"
BIOPYTHON_URL = "https://biopython.org/docs/latest/api/Bio.SeqUtils.ProtParam.html"
#: Text written by the BioMedGPT model (labelled as model output, never as a database fact).
BIOMEDGPT_LABEL = "BioMedGPT"

#: The labels a citation may take (any other bracketed text is not a citation).
LABEL_PATTERN = re.compile(r"^(PubChem CID \d+|ChEBI-20 CID \d+|UniProt [A-Z0-9]{6,10}(?:-\d+)?|PMID \d+|RDKit|Biopython|"
                           r"BioMedGPT|Doc [^\[\];]{1,60}|molecule reference [^\[\];,]{1,120})$")

#: The ``source`` of a hit from a ``BIOMEDGPT_MOLECULE_DB`` file starts so (``molecule reference <file name>``).
MOLECULE_DB_SOURCE_PREFIX = "molecule reference "


def pubchem_label(cid: int | str) -> str:
    return f"PubChem CID {cid}"


def pubchem_url(cid: int | str) -> str:
    """The compound's PubChem page; ``""`` for an id that is not a CID."""
    return f"https://pubchem.ncbi.nlm.nih.gov/compound/{cid}" if str(cid).isdigit() else ""


def chebi20_label(cid: int | str) -> str:
    """A ChEBI-20 reference molecule (keyed by its PubChem CID; its text comes from ChEBI-20, not PubChem)."""
    return f"ChEBI-20 CID {cid}"


def uniprot_label(accession: str) -> str:
    return f"UniProt {accession}"


def uniprot_url(accession: str) -> str:
    return f"https://www.uniprot.org/uniprotkb/{accession}/entry"


def pmid_label(pmid: int | str) -> str:
    return f"PMID {pmid}"


def pubmed_url(pmid: int | str | None) -> str:
    """The abstract's PubMed page; ``""`` without a PMID."""
    return f"https://pubmed.ncbi.nlm.nih.gov/{pmid}/" if pmid else ""


def molecule_db_label(source: str, ident: str) -> str:
    """A molecule of a ``BIOMEDGPT_MOLECULE_DB`` file, cited by its source (``molecule reference <file name>``)
    and its id there: the file's ids are its own, not PubChem CIDs, even when they are all digits."""
    return f"{source} {ident}"


def doc_label(name: str) -> str:
    """A user-ingested document, cited by its file name (or its title when it has no file)."""
    return f"Doc {name}"
