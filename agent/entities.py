"""Entity recognisers for the offline planner: ``recognise(text) -> list[Entity]``.

Use: ``from biomedgpt.agent.entities import recognise, classify_name``. ``recognise`` finds the
structured identifiers in a user's question (SMILES, UniProt accessions, PMIDs, CIDs, InChIKeys,
protein sequences); ``classify_name`` decides whether a free-text name ("aspirin", "hemoglobin",
"BRCA1") is a molecule or a protein.

Why not a regex alone for SMILES: English is full of strings that RDKit happily parses ("CO" in
"COVID", "I", "NO", "SOS"). A token must first *look* like chemistry (bonds, branches, rings,
brackets, aromatic atoms, or a run of organic atoms with at least two carbons) and only then is it
validated by RDKit. Quoting a token (``"CO"``) or writing ``SMILES: CO`` lifts the look-alike test,
because then the user said it is a structure.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator
from biomedgpt.core.chem import AMINO_ACIDS, MIN_DISTINCT_RESIDUES, MIN_SEQUENCE_LENGTH, try_parse_smiles
from biomedgpt.core.sources import UNIPROT_ACCESSION

EntityKind = Literal["molecule", "protein", "pmid", "cid", "inchikey", "text"]
EntitySource = Literal["smiles", "name", "accession", "sequence", "pmid", "cid", "inchikey", "text"]


class Entity(BaseModel):
    """One thing a question is about.

    ``kind`` is what it is (molecule, protein, PMID, CID, InChIKey, free text); ``source`` is how it
    was written (a SMILES, a name, an accession, a sequence, ...), which decides the tool calls.
    ``from_context`` marks an entity taken from the conversation ("it", "that protein").
    Built from plain dicts too (the graph state checkpoints dicts): a missing ``source`` is inferred
    from the value.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: EntityKind
    value: str
    source: EntitySource = "name"
    from_context: bool = False
    organism: str | None = None
    #: The name written beside a structure ("naproxen (COc1…)"): answers call the structure by it.
    name: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _infer_source(cls, data: object) -> object:
        if isinstance(data, dict) and not data.get("source") and data.get("value") is not None:
            data = dict(data)
            data["source"] = infer_source(str(data.get("kind", "")), str(data["value"]))
        return data

    @property
    def is_structure(self) -> bool:
        """True for a SMILES or sequence: the model can read it without any look-up."""
        return self.source in ("smiles", "sequence")


# --------------------------------------------------------------------------- structured identifiers

#: UniProt's official accession pattern (https://www.uniprot.org/help/accession_numbers); an isoform
#: suffix ("P05067-2") is left outside the match, so the canonical entry is looked up.
ACCESSION_RE = re.compile(rf"(?<![A-Za-z0-9])({UNIPROT_ACCESSION})(?![A-Za-z0-9])")
PMID_RE = re.compile(r"\b(?:PMID|PubMed(?:\s+ID)?)\s*[:#]?\s*(\d{1,9})\b", re.IGNORECASE)
CID_RE = re.compile(r"\b(?:PubChem\s+)?CID\s*[:#]?\s*(\d{1,10})\b", re.IGNORECASE)
INCHIKEY_RE = re.compile(r"(?<![A-Z0-9-])([A-Z]{14}-[A-Z]{10}-[A-Z])(?![A-Z0-9-])")

#: A run of residue letters this long is a sequence however few distinct letters it has (a GS linker).
LOW_COMPLEXITY_LENGTH = 30
_SEQ_RUN_RE = re.compile(r"(?<![A-Za-z])([ACDEFGHIKLMNPQRSTVWYXBZUO]{%d,})(?![A-Za-z])" % MIN_SEQUENCE_LENGTH)
# Sequences printed in blocks of ten ("MVLSPADKTN VKAAWGKVGA ...") or wrapped over lines.
_SEQ_BLOCKS_RE = re.compile(r"(?<![A-Za-z])((?:[ACDEFGHIKLMNPQRSTVWYXBZUO]{8,}[ \t]*\r?\n?[ \t]*){2,})")

# --------------------------------------------------------------------------- SMILES

_SMILES_CHARS_RE = re.compile(r"^[A-Za-z0-9@+\-\[\]()=#$/\\%.:*]+$")
_ORGANIC_ONLY_RE = re.compile(r"^(?:Cl|Br|[BCNOSPFI])+$")
_STRUCTURE_CHARS = set("=#()[]@/\\%+")
_EXPLICIT_SMILES_RE = re.compile(r"\bSMILES\s*(?:string)?\s*[:=]?\s*$", re.IGNORECASE)
_TRAILING_PUNCT = "?!,;:"
_QUOTES = "\"'`“”‘’"


def is_valid_smiles(smiles: str) -> bool:
    """True when RDKit parses ``smiles`` into at least one atom."""
    return bool(smiles) and try_parse_smiles(smiles) is not None


def looks_like_smiles(token: str) -> bool:
    """The look-alike test that runs before RDKit (see the module docstring for why)."""
    if not token or not _SMILES_CHARS_RE.match(token) or token.isdigit():
        return False
    if any(ch in _STRUCTURE_CHARS for ch in token):
        return True
    has_digit = any(ch.isdigit() for ch in token)
    if has_digit and re.search(r"[cnops]\d|[A-Z]\d", token):
        return True  # ring closures: c1ccccc1, C1CCCCC1
    if _ORGANIC_ONLY_RE.match(token) and len(token) >= 3 and token.count("C") - token.count("Cl") >= 2:
        return True  # CCO, CCCC, OCCO
    return False


#: Written only in SMILES's alphabet (organic-subset atoms, bracket atoms, bonds, rings, branches): a token
#: like this that RDKit rejects is a malformed structure, not a name ("(R)-ibuprofen" has other letters).
_SMILES_ALPHABET_RE = re.compile(r"^(?:Cl|Br|[BCNOSPFIbcnosp]|\[[^\]\s]*\]|[0-9@+\-=#$/\\%().:*])+$")


def malformed_smiles(token: str) -> bool:
    """True for a token written as a SMILES that RDKit cannot read (``C1CC(C``, ``c1cccc1``, ``C[Xx]C``)."""
    token = token.strip("?!,;:.\"'`“”‘’")
    atoms = len(re.findall(r"Cl|Br|[BCNOSPFIbcnosp]", re.sub(r"\[[^\]]*\]", "C", token)))
    structured = any(ch in "=#()[]@" for ch in token) or (atoms >= 3 and re.search(r"[A-Za-z]\d", token))
    return (len(token) >= 3 and bool(structured) and looks_like_smiles(token)
            and bool(_SMILES_ALPHABET_RE.match(token)) and not is_valid_smiles(token))


def _smiles_variants(token: str) -> list[str]:
    """The token and the trims that undo the punctuation of a sentence around it."""
    out = [token]
    trimmed = token.rstrip(_TRAILING_PUNCT)
    if trimmed.endswith(".") and not trimmed.endswith(".."):
        trimmed = trimmed[:-1]
    out.append(trimmed)
    if trimmed.startswith("(") and trimmed.endswith(")"):
        out.append(trimmed[1:-1])
    if trimmed.count(")") > trimmed.count("(") and trimmed.endswith(")"):
        out.append(trimmed[:-1])
    if trimmed.count("(") > trimmed.count(")") and trimmed.startswith("("):
        out.append(trimmed[1:])
    seen: list[str] = []
    for item in out:
        if item and item not in seen:
            seen.append(item)
    return seen


# --------------------------------------------------------------------------- names

#: Words that make a name a protein (matched on whole words of the name).
PROTEIN_WORDS = frozenset(
    """protein proteins kinase kinases receptor receptors enzyme enzymes hemoglobin haemoglobin insulin
    albumin antibody antibodies immunoglobulin collagen actin myosin tubulin keratin elastin fibrinogen
    channel transporter transporters pump factor cytokine interleukin interferon integrin cadherin
    histone ubiquitin globin myoglobin ferritin transferrin lysozyme pepsin trypsin chymotrypsin thrombin
    plasmin renin amylase lipase catalase polymerase protease peptidase synthase synthetase reductase
    oxidase dehydrogenase transferase hydrolase ligase isomerase helicase nuclease phosphatase
    cyclooxygenase cyclin caspase chaperone subunit domain precursor spike capsid nucleoprotein
    glycoprotein lipoprotein hormone opsin rhodopsin calmodulin troponin titin dystrophin huntingtin
    amyloid tau synuclein prion leptin ghrelin glucagon erythropoietin oxytocin vasopressin
    gene homolog homologue ortholog""".split()
)
#: Names that end in -ase but are not enzymes.
_NOT_ENZYMES = frozenset("disease diseases release increase decrease phase database purchase case base ease "
                         "please phrase chase erase crease lease".split())
#: Upper-case abbreviations of small molecules that would otherwise look like gene symbols.
SMALL_MOLECULE_ABBREVIATIONS = frozenset(
    "ATP ADP AMP GTP GDP CTP UTP NAD NADH NADP NADPH FAD FADH2 FMN COA GABA LSD MDMA DMSO THC CBD EDTA TNT "
    "PEG SDS DMF THF DCM TFA DDT PCB PFOA BPA NAC ASA MSG".split()
)
#: Words that make a name a molecule.
MOLECULE_WORDS = frozenset("molecule molecules compound compounds drug drugs chemical ligand inhibitor acid "
                           "salt ester alcohol metabolite".split())
_MOLECULE_SUFFIXES = ("ol", "one", "ide", "ate", "ine", "ene", "ane", "yne", "yl", "ose", "amide", "azole",
                      "cillin", "mycin", "statin", "pril", "sartan", "olol", "profen", "oxacin", "vir", "mab")
_GENE_SYMBOL_RE = re.compile(r"^(?:[A-Z][A-Z0-9]{1,9}(?:-[A-Z0-9]+)?|p\d{2,3})$")


def classify_name(name: str, hint: Literal["molecule", "protein"] | None = None) -> Literal["molecule", "protein"]:
    """Molecule or protein, from the name's words; ``hint`` (from the question's intent) breaks ties.

    Why a lexicon: the offline planner has no LLM; the protein vocabulary (kinase, receptor, -ase,
    hemoglobin, insulin, ...) and gene-symbol shapes (BRCA1, TP53, EGFR) decide most real questions.
    """
    words = [w for w in re.split(r"[\s/]+", name.strip()) if w]
    lowered = [w.lower().strip(".,;:()") for w in words]
    if any(w in PROTEIN_WORDS for w in lowered):
        return "protein"
    if any(len(w) > 5 and w.endswith("ase") and w not in _NOT_ENZYMES for w in lowered):
        return "protein"
    if any(w in MOLECULE_WORDS for w in lowered) or hint == "molecule":
        return "molecule"  # a molecule word, or a molecule field asked ("logP of XYZ123"): not a gene symbol
    if len(words) <= 2:
        for word in words:
            if word.upper() in SMALL_MOLECULE_ABBREVIATIONS:
                return "molecule"
            if _GENE_SYMBOL_RE.match(word) and (any(c.isdigit() for c in word) or len(word) >= 3):
                return "protein"
    if hint == "protein":
        if any(w.endswith(_MOLECULE_SUFFIXES) for w in lowered if len(w) > 4):
            return "molecule"
        return "protein"
    return "molecule"


# --------------------------------------------------------------------------- recognise


def infer_source(kind: str, value: str) -> str:
    """How ``value`` is written, for entities that arrive as dicts without a ``source``."""
    if kind in ("pmid", "cid", "inchikey", "text"):
        return kind
    if kind == "protein":
        if ACCESSION_RE.fullmatch(value):
            return "accession"
        if len(value) >= MIN_SEQUENCE_LENGTH and set(value.upper()) <= AMINO_ACIDS:
            return "sequence"
        return "name"
    if kind == "molecule":
        if value.isdigit():
            return "cid"
        if looks_like_smiles(value) and is_valid_smiles(value):
            return "smiles"
        return "name"
    return "text"


class Match(BaseModel):
    """An entity with where it sits in the question (so the planner can cut it out of the text)."""

    entity: Entity
    start: int
    end: int


#: A FASTA record: its header line, then whole lines of residues: upper case (blocks may be spaced or numbered),
#: or lower-case blocks of ten or more; a line of prose after it ("what could this be?") is not sequence.
_FASTA_RE = re.compile(r"(?m)^>[^\n]*(?:\r?\n(?:[ \t\d]*[A-Z*][A-Z*\d \t]*|[ \t\d]*[a-z*]{10,}(?:[ \t\d]+[a-z*]{10,})*[ \t\d]*)$)+")


def _sequence_matches(text: str) -> list[Match]:
    found: list[Match] = []
    taken: list[tuple[int, int]] = []
    # A FASTA record: its header (which may hold an accession) belongs to the sequence.
    for m in _FASTA_RE.finditer(text):
        residues = re.sub(r"[\s\d]+", "", m.group().split("\n", 1)[1]).rstrip("*").upper()
        if len(residues) >= MIN_SEQUENCE_LENGTH and set(residues) <= AMINO_ACIDS:
            taken.append(m.span())
            found.append(Match(entity=Entity(kind="protein", value=residues, source="sequence"),
                               start=m.start(), end=m.end()))
    for regex in (_SEQ_BLOCKS_RE, _SEQ_RUN_RE):
        for m in regex.finditer(text):
            start, end = m.span(1)
            if any(a < end and start < b for a, b in taken):
                continue
            residues = re.sub(r"\s+", "", m.group(1))
            low_complexity = len(residues) >= LOW_COMPLEXITY_LENGTH  # "GSGSGS…": a linker is still a sequence
            if len(residues) < MIN_SEQUENCE_LENGTH or len(set(residues)) < MIN_DISTINCT_RESIDUES and not low_complexity:
                continue
            taken.append((start, end))
            found.append(Match(entity=Entity(kind="protein", value=residues, source="sequence"), start=start, end=end))
    # A whole lower-case token of amino letters (a pasted sequence in lower case).
    for m in re.finditer(r"(?<![A-Za-z])([acdefghiklmnpqrstvwyxbzuo]{30,})(?![A-Za-z])", text):
        start, end = m.span(1)
        residues = m.group(1).upper()
        if len(set(residues)) >= MIN_DISTINCT_RESIDUES and not any(a < end and start < b for a, b in taken):
            taken.append((start, end))
            found.append(Match(entity=Entity(kind="protein", value=residues, source="sequence"), start=start, end=end))
    return found


def _smiles_matches(text: str, taken: list[tuple[int, int]]) -> list[Match]:
    found: list[Match] = []
    for m in re.finditer(r"\S+", text):
        start, end = m.span()
        if any(a < end and start < b for a, b in taken):
            continue
        raw = m.group()
        explicit = bool(_EXPLICIT_SMILES_RE.search(text[:start]))
        token = raw
        if "=" in token and token.lower().startswith("smiles="):
            token, explicit = token[7:], True
        elif ":" in token and token.lower().startswith("smiles:"):
            token, explicit = token[7:], True
        if token and token[0] in _QUOTES and token.rstrip(_TRAILING_PUNCT + ".")[-1:] in _QUOTES:
            token = token.rstrip(_TRAILING_PUNCT + ".")
            token, explicit = token.strip(_QUOTES), True
        for candidate in _smiles_variants(token):
            if not (explicit or looks_like_smiles(candidate)):
                continue
            if explicit and candidate.isalpha() and candidate.lower() == candidate:
                continue  # a quoted English word such as "aspirin" is a name, not a SMILES
            if is_valid_smiles(candidate):
                offset = raw.find(candidate)
                s = start + max(offset, 0)
                found.append(Match(entity=Entity(kind="molecule", value=candidate, source="smiles"),
                                   start=s, end=s + len(candidate)))
                break
    return found


def recognise(text: str) -> list[Match]:
    """Every structured identifier in ``text``, in order of appearance (names are the planner's job).

    Order of precedence: PMIDs, CIDs, InChIKeys, accessions and sequences claim their spans first,
    so that ``P05067`` or a sequence is never re-read as a SMILES.
    """
    matches: list[Match] = []
    taken: list[tuple[int, int]] = []

    def claim(m: re.Match, entity: Entity, group: int = 0) -> None:
        span = m.span(group) if group else m.span()
        if any(a < span[1] and span[0] < b for a, b in taken):
            return
        taken.append(span)
        matches.append(Match(entity=entity, start=span[0], end=span[1]))

    for m in PMID_RE.finditer(text):
        claim(m, Entity(kind="pmid", value=m.group(1), source="pmid"))
    for m in CID_RE.finditer(text):
        claim(m, Entity(kind="cid", value=m.group(1), source="cid"))
    for m in INCHIKEY_RE.finditer(text):
        claim(m, Entity(kind="inchikey", value=m.group(1), source="inchikey"), 1)
    sequences = _sequence_matches(text)
    for match in sequences:
        if match.entity.value and text[match.start] == ">":  # FASTA records first: the header is theirs
            taken.append((match.start, match.end))
            matches.append(match)
    for m in ACCESSION_RE.finditer(text):
        claim(m, Entity(kind="protein", value=m.group(1), source="accession"), 1)
    for match in sequences:
        if not any(a < match.end and match.start < b for a, b in taken):
            taken.append((match.start, match.end))
            matches.append(match)
    for match in _smiles_matches(text, taken):
        taken.append((match.start, match.end))
        matches.append(match)
    matches.sort(key=lambda item: item.start)
    return matches
