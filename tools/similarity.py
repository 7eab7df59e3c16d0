"""Nearest known molecules and proteins, with descriptions: ``similar_known(smiles="CCO", k=5)``.

Why: a structure explained next to its nearest known neighbours (and what they are known to do) is
evidence for an answer, and beats guessing. Local hits come from the shipped references in
``biomedgpt.model.retrieval`` (every ChEBI-20 row, validation + test) and always work offline; proteins are aligned with phmmer
(``biomedgpt.model.alignment``) to the shipped Swiss-Prot train split and the ``BIOMEDGPT_PROTEIN_DB`` FASTA, and
a hit above ``BIOMEDGPT_PROTEIN_MAX_EVALUE`` is never evidence;
``BIOMEDGPT_MOLECULE_DB`` replaces the molecule reference with a large file of one's own
(``model/molecule_db``: fingerprinted once, cached, searched as packed bits; 1M molecules in ~266 MB);
when online, PubChem's ``fastsimilarity_2d`` search adds neighbours from all of PubChem. A PubChem
failure is reported and the local hits are still returned: one bad service never fails the answer.
"""

from __future__ import annotations

from collections.abc import Iterable

from biomedgpt.core.chem import morgan_generator, parse_smiles
from biomedgpt.core.errors import BiomedGPTError, InputError
from biomedgpt.core.settings import get_settings
from biomedgpt.core.sources import pubchem_url, uniprot_url
from biomedgpt.model.alignment import AlignmentHit, search_homologues
from biomedgpt.model.molecule_db import configured_molecule_db
from biomedgpt.model.retrieval import Hit, default_molecule_index, molecule_key
from biomedgpt.tools.errors import NotFound
from biomedgpt.tools.progress import report
from biomedgpt.tools.pubchem import PubChemClient
from biomedgpt.tools.records import Compound, SimilarHit
from biomedgpt.tools.services import default_services

MOLECULE_SOURCE = "ChEBI-20 reference"
PROTEIN_SOURCE = "Swiss-Prot reference"
PUBCHEM_SOURCE = "PubChem fastsimilarity_2d"
PUBCHEM_THRESHOLD = 90  # PubChem's own 2D-fingerprint Tanimoto threshold, in percent


def _report(message: str) -> None:
    """Tell the user about a degraded answer through the shared progress channel."""
    report(message, service="pubchem", degraded=True)


def _from_hit(hit: Hit, source: str = MOLECULE_SOURCE) -> SimilarHit:
    if hit.kind == "protein":
        return SimilarHit(kind="protein", id=hit.id, name=hit.name, sequence=hit.sequence,
                          description=hit.description, similarity=hit.similarity, source=PROTEIN_SOURCE,
                          url=uniprot_url(hit.id))
    return SimilarHit(kind="molecule", id=hit.id, name=hit.name, smiles=hit.smiles, description=hit.description,
                      similarity=hit.similarity, source=source, url=pubchem_url(hit.id))


def _from_alignment(hit: AlignmentHit, cutoff: float) -> SimilarHit:
    return SimilarHit(kind="protein", id=hit.id, name=hit.name, sequence=hit.sequence, description=hit.description,
                      similarity=hit.identity, source=hit.source, url=uniprot_url(hit.id), evalue=hit.evalue,
                      identity=hit.identity, coverage=hit.coverage, evalue_cutoff=cutoff)


def protein_homologues(sequence: str, k: int = 5, *, exclude_ids: Iterable[str] = (), leave_self_out: bool = True,
                       settings=None) -> list[SimilarHit]:
    """Up to ``k`` homologues of ``sequence`` by phmmer alignment (``model/alignment``) over the shipped Swiss-Prot
    reference and the ``protein_db`` FASTA, lowest E-value first. Only hits with E-value <= ``protein_max_evalue``
    are evidence; when none is, the best hit alignment found (if any) is returned alone, marked not significant
    (``SimilarHit.significant``), so an answer can say how far the nearest protein is ("no close homologue,
    best E-value 0.3") without showing it as a homologue."""
    settings = settings or get_settings()
    cutoff = settings.protein_max_evalue
    hits = search_homologues(sequence, k, exclude_ids=exclude_ids, leave_self_out=leave_self_out, settings=settings)
    passing = [h for h in hits if h.evalue <= cutoff]
    return [_from_alignment(h, cutoff) for h in (passing or hits[:1])]


def molecule_reference():
    """(index, source label) of the local molecule search: the ``BIOMEDGPT_MOLECULE_DB`` file when set
    (a bad file is one ``ConfigError`` line naming it), else the shipped ChEBI-20 reference. Both have
    the same ``search`` and the same packed-fingerprint scan (``model/fpindex``)."""
    db = configured_molecule_db()
    if db is not None:
        return db, db.source
    return default_molecule_index(), MOLECULE_SOURCE


def _pubchem_hits(pubchem: PubChemClient, smiles: str, k: int, exclude: set[str],
                  leave_self_out: bool) -> list[SimilarHit]:
    """PubChem neighbours (asked through ``pubchem``), scored with the same Morgan/Tanimoto measure as the local
    reference."""
    from rdkit import DataStructs  # deferred: RDKit costs ~0.2 s to import

    compounds: list[Compound] = pubchem.similar(smiles, threshold=PUBCHEM_THRESHOLD, max_records=k + 1)
    query = parse_smiles(smiles)
    query_key = molecule_key(query)
    generator = morgan_generator()
    query_fp = generator.GetFingerprint(query)
    hits = []
    for compound in compounds:
        if str(compound.cid) in exclude:
            continue
        structure = compound.smiles or compound.connectivity_smiles
        similarity = PUBCHEM_THRESHOLD / 100.0  # PubChem guarantees at least its threshold
        if structure:
            try:
                mol = parse_smiles(structure)
            except InputError:
                mol = None
            if mol is not None:
                if leave_self_out and (compound.inchikey or molecule_key(mol)) == query_key:
                    continue
                similarity = DataStructs.TanimotoSimilarity(query_fp, generator.GetFingerprint(mol))
        elif leave_self_out and compound.inchikey and compound.inchikey == query_key:
            continue
        description = compound.descriptions[0].text if compound.descriptions else (compound.title or "")
        hits.append(SimilarHit(kind="molecule", id=str(compound.cid), name=compound.title, smiles=structure,
                               description=description, similarity=round(float(similarity), 4),
                               source=PUBCHEM_SOURCE, url=compound.url))
    hits.sort(key=lambda h: -h.similarity)
    return hits[:k]


def similar_known(smiles: str | None = None, sequence: str | None = None, k: int = 5, *,
                  online: bool | None = None, exclude_ids: Iterable[str] = (),
                  leave_self_out: bool = True, pubchem: PubChemClient | None = None) -> list[SimilarHit]:
    """The ``k`` nearest known molecules (give ``smiles``) or proteins (give ``sequence``), best first.

    Molecules: ChEBI-20 reference hits (Morgan Tanimoto; the ``BIOMEDGPT_MOLECULE_DB`` file's instead when
    that is set), then, when ``online`` (default: not ``offline`` in the settings of ``pubchem``, else of the
    process), up to ``k`` PubChem ``fastsimilarity_2d`` hits scored the same way.
    Proteins: homologues by phmmer alignment over the Swiss-Prot reference and the ``BIOMEDGPT_PROTEIN_DB`` FASTA
    (``protein_homologues``: E-value, identity, coverage; only E-value <= ``protein_max_evalue`` is evidence, else
    the best alignment alone, marked not significant). ``leave_self_out`` drops the query itself
    (same InChIKey / identical sequence); ``exclude_ids`` drops given CIDs or accessions. ``pubchem`` is the
    client the PubChem search goes through (an ``Assistant``'s ``services.pubchem``, so its settings' server and
    session are used); without one, that of the process-wide ``Services`` (``default_services()``).
    """
    if (smiles is None) == (sequence is None):
        raise InputError("similar_known needs exactly one of smiles= or sequence=")
    if not isinstance(k, int) or k < 1 or k > 100:
        raise InputError(f"k must be an integer between 1 and 100, got {k!r}")
    exclude = {str(i) for i in exclude_ids}
    if sequence is not None:
        return protein_homologues(sequence, k, exclude_ids=exclude, leave_self_out=leave_self_out)

    index, source = molecule_reference()
    local = [_from_hit(h, source) for h in index.search(smiles, k, exclude_ids=exclude,
                                                        leave_self_out=leave_self_out)]
    if online is None:
        online = not (pubchem.http.settings if pubchem is not None else get_settings()).offline
    if not online:
        return local
    if pubchem is None:
        pubchem = default_services().pubchem
    try:
        remote = _pubchem_hits(pubchem, smiles, k, exclude, leave_self_out)
    except NotFound:  # PubChem has no compound above the threshold: nothing to add
        return local
    except (BiomedGPTError, OSError) as error:  # ServiceError, OfflineMiss, Throttled, connection failures
        _report(f"PubChem similarity search failed, showing local reference hits only: {error}")
        return local
    known = {h.id for h in local}
    return local + [h for h in remote if h.id not in known]
