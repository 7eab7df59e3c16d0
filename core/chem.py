"""Structures as text, defined once: ``from biomedgpt.core.chem import parse_smiles, validate_sequence``.

Why one module: a SMILES that the featurizer accepts must be one that the properties tool, the
similarity index, the planner and training accept too, and a sequence the protein encoder rejects
must be rejected with the same sentence everywhere. Every room parses structures through here:

- ``parse_smiles(text)`` → an RDKit molecule, or ``InvalidSmilesError`` that names the input and says
  why RDKit refused it (syntax vs chemistry); ``try_parse_smiles(text)`` → a molecule or ``None``
  for recognisers that only ask "is this a structure?". RDKit's own stderr chatter is blocked.
- ``AMINO_ACIDS`` (the 20 standard letters plus X B Z U O), ``validate_sequence`` (plain or one-record
  FASTA; the bad letter and its position named; a trailing stop ``*`` named as such),
  ``is_sequence`` (the quiet yes/no of the same rule) and ``looks_like_sequence`` (is a piece of a
  question a pasted sequence rather than words?).
- The molecular fingerprint: Morgan radius 2, 2048 bits (``FP_RADIUS``, ``FP_BITS``,
  ``morgan_generator()``), used by the reference index, PubChem neighbours and pairwise similarity.

RDKit and Biopython are imported inside the functions that need them (deferred: a question that
needs neither must not pay for them at start-up).
"""

from __future__ import annotations

import io
import re
import warnings
from functools import lru_cache
from typing import Any

from biomedgpt.core.errors import ConfigError, InvalidSequenceError, InvalidSmilesError

# ----------------------------------------------------------------------------- SMILES


def try_parse_smiles(smiles: object) -> Any | None:
    """RDKit's sanitized molecule for ``smiles``, or ``None`` (never raises, never prints)."""
    if not isinstance(smiles, str) or not smiles.strip():
        return None
    from rdkit import Chem, rdBase  # deferred: RDKit costs ~0.2 s to import

    with rdBase.BlockLogs():
        try:
            mol = Chem.MolFromSmiles(smiles.strip())
        except Exception:  # noqa: BLE001 - RDKit raises on some pathological input
            return None
    return mol if mol is not None and mol.GetNumAtoms() > 0 else None


def parse_smiles(smiles: object, where: str = "") -> Any:
    """Parse one SMILES (sanitized, no added hydrogens); a failure names the input and the reason.

    ``where`` is appended to the subject of the message (e.g. ``" at position 3"``) so a caller that
    parses a list can say which item failed.
    """
    if not isinstance(smiles, str):
        raise InvalidSmilesError(f"SMILES{where} must be a string, got {type(smiles).__name__}: {smiles!r}")
    text = smiles.strip()
    if not text:
        raise InvalidSmilesError(f"invalid SMILES {smiles!r}{where}: it is empty")
    mol = try_parse_smiles(text)
    if mol is None:
        raise InvalidSmilesError(f"invalid SMILES {_short(smiles)}{where}: {diagnose_smiles(text)}")
    return mol


def diagnose_smiles(text: str) -> str:
    """Why RDKit rejects a SMILES: a syntax error, no atoms, or the chemistry problems it detects."""
    from rdkit import Chem, rdBase  # deferred: RDKit

    with rdBase.BlockLogs():
        try:
            raw = Chem.MolFromSmiles(text, sanitize=False)
        except Exception:  # noqa: BLE001
            raw = None
        if raw is None:
            return "RDKit cannot parse it (syntax error)"
        if raw.GetNumAtoms() == 0:
            return "it has no atoms"
        problems = Chem.DetectChemistryProblems(raw)
    if problems:
        return "; ".join(p.Message() for p in problems)
    return "RDKit cannot sanitize it"


def _short(text: str, limit: int = 80) -> str:
    """``repr`` of an input, cut for error messages (a 10 kB input is not echoed whole)."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


# ----------------------------------------------------------------------------- fingerprints

#: The molecular fingerprint of every similarity in biomedgpt: Morgan (ECFP4-like), radius 2, 2048 bits.
FP_RADIUS = 2
FP_BITS = 2048


@lru_cache(maxsize=1)
def morgan_generator() -> Any:
    """RDKit's Morgan fingerprint generator with the project's one fingerprint spec."""
    from rdkit.Chem import rdFingerprintGenerator  # deferred: RDKit

    return rdFingerprintGenerator.GetMorganGenerator(radius=FP_RADIUS, fpSize=FP_BITS)


def tanimoto(smiles_a: str, smiles_b: str) -> float:
    """Tanimoto similarity of two SMILES under the project's fingerprint (``InvalidSmilesError`` names a bad one)."""
    from rdkit import DataStructs  # deferred: RDKit

    generator = morgan_generator()
    fp_a = generator.GetFingerprint(parse_smiles(smiles_a))
    fp_b = generator.GetFingerprint(parse_smiles(smiles_b))
    return float(DataStructs.TanimotoSimilarity(fp_a, fp_b))


# ----------------------------------------------------------------------------- sequences

#: The 20 standard amino-acid letters.
STANDARD_AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
#: Letters beyond the standard 20 that UniProt and ESM-2 use: unknown X, ambiguous B (D/N) and Z (E/Q),
#: selenocysteine U, pyrrolysine O.
EXTRA_AMINO_ACIDS = "XBZUO"
#: Every letter a protein sequence may hold.
AMINO_ACIDS = frozenset(STANDARD_AMINO_ACIDS + EXTRA_AMINO_ACIDS)
#: What ``validate_sequence`` does with an over-long sequence: keep the first residues (with a
#: ``SequenceTruncatedWarning``), or raise ``InvalidSequenceError``.
TOO_LONG_POLICIES = ("truncate", "error")
#: A pasted sequence is at least this long; shorter runs of letters are words.
MIN_SEQUENCE_LENGTH = 20
#: A real sequence uses many different residues; "CCCCCCCCCCCCCCCCCCCCO" (a SMILES) does not.
MIN_DISTINCT_RESIDUES = 6

_BAD_LETTER = re.compile(f"[^{STANDARD_AMINO_ACIDS}{EXTRA_AMINO_ACIDS}]")


class SequenceTruncatedWarning(UserWarning):
    """A protein was longer than the encoder's window and only its first residues were encoded."""


def _from_fasta(text: str, label: str) -> tuple[str, str]:
    """(record id, sequence) of a one-record FASTA string, parsed with Biopython."""
    from Bio import SeqIO  # deferred: only FASTA input needs Biopython

    try:
        records = list(SeqIO.parse(io.StringIO(text), "fasta"))
    except ValueError as error:
        raise InvalidSequenceError(f"{label} is not valid FASTA: {error}") from error
    if len(records) != 1:
        raise InvalidSequenceError(f"{label} is FASTA with {len(records)} records; give exactly one protein")
    return records[0].id, str(records[0].seq)


def validate_sequence(sequence: object, *, max_residues: int | None = None, on_too_long: str = "truncate",
                      name: str | None = None) -> str:
    """Clean and check a protein sequence (plain or one-record FASTA); return the upper-case residues.

    Whitespace and newlines are removed and letters upper-cased. The 20 standard letters plus
    X B Z U O pass; any other character raises ``InvalidSequenceError`` naming it and its 1-based
    position ('*' is named as a stop codon to remove). With ``max_residues``, a longer sequence is cut
    to its first ``max_residues`` with a ``SequenceTruncatedWarning`` (``on_too_long="truncate"``) or
    raises (``"error"``).
    """
    if on_too_long not in TOO_LONG_POLICIES:
        raise ConfigError(f"on_too_long={on_too_long!r} is not one of {', '.join(TOO_LONG_POLICIES)}")
    label = f"protein sequence {name!r}" if name else "protein sequence"
    if not isinstance(sequence, str):
        raise InvalidSequenceError(f"{label} must be a string, got {type(sequence).__name__}")
    text = sequence.strip()
    if text.startswith(">"):
        record_id, text = _from_fasta(text, label)
        if not name and record_id:
            label = f"protein sequence {record_id!r}"
    residues = "".join(text.split()).upper()
    if not residues:
        raise InvalidSequenceError(f"{label} is empty")
    bad = _BAD_LETTER.search(residues)
    if bad:
        others = sum(1 for c in residues if c not in AMINO_ACIDS) - 1
        more = f" (and {others} more invalid character{'s' if others != 1 else ''})" if others else ""
        hint = " ('*' is a stop codon: remove it)" if bad.group() == "*" else ""
        raise InvalidSequenceError(
            f"{label} has {bad.group()!r} at position {bad.start() + 1}{more}: not an amino-acid letter; "
            f"allowed are {STANDARD_AMINO_ACIDS} and {EXTRA_AMINO_ACIDS}{hint}"
        )
    if max_residues is not None and len(residues) > max_residues:
        policy = f"the encoder reads at most {max_residues} residues"
        if on_too_long == "error":
            raise InvalidSequenceError(f"{label} has {len(residues)} residues; {policy}")
        warnings.warn(f"{label} has {len(residues)} residues; {policy}, so only the first {max_residues} are "
                      "encoded (pass on_too_long='error' to fail instead)", SequenceTruncatedWarning, stacklevel=2)
        residues = residues[:max_residues]
    return residues


def sequence_mass(sequence: str) -> float:
    """Average mass in Da of a protein sequence (Biopython's ProteinAnalysis, average isotopic masses,
    one water added). Ambiguous letters (B, Z, X, U, O) are not weighed: the result is then ``nan``."""
    # deferred: Biopython's ProtParam is only needed for sequence questions
    from Bio.SeqUtils.ProtParam import ProteinAnalysis

    clean = sequence.upper().rstrip("*")
    if set(clean) - set(STANDARD_AMINO_ACIDS):
        return float("nan")
    return float(ProteinAnalysis(clean).molecular_weight())


def is_sequence(value: object) -> bool:
    """True when ``validate_sequence`` would accept ``value`` as plain residues (no FASTA, no errors)."""
    if not isinstance(value, str):
        return False
    residues = "".join(value.split()).upper()
    return bool(residues) and _BAD_LETTER.search(residues) is None


def looks_like_sequence(text: str) -> bool:
    """A FASTA record, or one run of >= 20 letters (whitespace allowed only as line/block breaks).

    A single long token is taken as a sequence even with a wrong letter, so the user hears which
    letter is wrong (``validate_sequence``) instead of a failed name search.
    """
    text = text.strip()
    if text.startswith(">"):
        return True
    compact = "".join(text.split())
    if len(compact) < MIN_SEQUENCE_LENGTH or not compact.isalpha():
        return False
    blocks = text.split()
    if len(blocks) == 1:
        return True  # no protein name is one 20-letter word
    if min(len(b) for b in blocks[:-1]) < 8:
        return False  # "amyloid beta precursor protein": words, not sequence blocks
    upper = set(compact.upper())
    return upper <= AMINO_ACIDS and len(upper) >= MIN_DISTINCT_RESIDUES
