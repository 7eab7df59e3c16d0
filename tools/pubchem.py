"""PubChem PUG-REST / PUG-View client: ``PubChemClient().compound("aspirin")`` → a ``Compound``.

Why a client of our own rather than PubChemPy: it must run through the project's HTTP layer (rate
limits shared across threads, X-Throttling-Control, cache, offline mode, clear faults) and survive
PubChem's 2025 renaming of ``IsomericSMILES``/``CanonicalSMILES`` to ``SMILES``/``ConnectivitySMILES``;
rows with either naming parse to the same ``Compound``.

URLs follow the PUG-REST grammar ``{pubchem_url}/rest/pug/compound/<namespace>/<identifiers>/<operation>/JSON``
(https://pubchem.ncbi.nlm.nih.gov/docs/pug-rest); descriptions also come from PUG-View
``{pubchem_url}/rest/pug_view/data/compound/<cid>/JSON``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote

import requests
from pydantic import BaseModel, ConfigDict, Field

from biomedgpt.core.chem import try_parse_smiles
from biomedgpt.core.errors import InputError, InvalidSmilesError, shorten
from biomedgpt.core.settings import Settings
from biomedgpt.core.sources import pubchem_url
from biomedgpt.tools.errors import NotFound, OfflineMiss, ServiceError
from biomedgpt.tools.http import ServiceClient, WrapsServiceClient, body_summary, expect_json
from biomedgpt.tools.progress import report
from biomedgpt.tools.records import Compound, Description

# The properties fetched for every Compound; PubChem's current names (old SMILES names still parse).
PROPERTIES = ("Title", "IUPACName", "MolecularFormula", "MolecularWeight", "SMILES", "ConnectivitySMILES",
              "InChI", "InChIKey", "XLogP", "TPSA", "MonoisotopicMass", "HBondDonorCount", "HBondAcceptorCount",
              "RotatableBondCount", "HeavyAtomCount", "Complexity", "Charge")
#: How many of a name's CIDs are checked for an exact title match (one POST).
PROPERTY_BATCH_FOR_NAMES = 5
PROPERTY_BATCH = 500  # CIDs per POST; PubChem accepts long lists in a POST body, this keeps each call quick
INCHIKEY_RE = re.compile(r"^[A-Z]{14}-[A-Z]{10}-[A-Z]$")
_SMILES_ONLY_CHARS = set("=#@[]()\\/+%")  # characters a compound name practically never has without spaces


# -- the envelopes PubChem answers with (checked before an answer is cached; tools/http.py) -------------------
# Which empty answers are valid: a similarity search may find nothing (an empty or absent CID list);
# a name/SMILES/InChIKey look-up always lists at least one CID (PubChem's "no such structure" is [0]);
# a property, synonym or description look-up for a CID always has at least one row.


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="allow")


Text = str | None
Number = float | str | None  # PubChem sends MolecularWeight as a string, XLogP/TPSA as numbers


class _CIDs(_Envelope):
    CID: list[int] = Field(min_length=1)


class CIDLookupAnswer(_Envelope):
    """``{"IdentifierList": {"CID": [2244]}}`` (``[0]``: no such compound)."""

    IdentifierList: _CIDs


class _MaybeCIDs(_Envelope):
    CID: list[int] = Field(default_factory=list)


class SimilarityAnswer(_Envelope):
    """``{"IdentifierList": {"CID": [...]}}``; no hits is a valid answer."""

    IdentifierList: _MaybeCIDs


class PropertyRow(_Envelope):
    CID: int = Field(gt=0)
    Title: Text = None
    IUPACName: Text = None
    MolecularFormula: Text = None
    MolecularWeight: Number = None
    SMILES: Text = None
    ConnectivitySMILES: Text = None
    IsomericSMILES: Text = None
    CanonicalSMILES: Text = None
    InChI: Text = None
    InChIKey: Text = None
    XLogP: Number = None
    TPSA: Number = None
    MonoisotopicMass: Number = None
    HBondDonorCount: Number = None
    HBondAcceptorCount: Number = None
    RotatableBondCount: Number = None
    HeavyAtomCount: Number = None
    Complexity: Number = None
    Charge: Number = None


class _Properties(_Envelope):
    Properties: list[PropertyRow] = Field(min_length=1)


class PropertyAnswer(_Envelope):
    """``{"PropertyTable": {"Properties": [{"CID": 2244, ...}]}}``: at least one row."""

    PropertyTable: _Properties


class _SynonymRow(_Envelope):
    CID: int | None = None
    Synonym: list[str] = Field(default_factory=list)


class _DescriptionRow(_Envelope):
    CID: int | None = None
    Title: Text = None
    Description: Text = None
    DescriptionSourceName: Text = None
    DescriptionURL: Text = None


class _Synonyms(_Envelope):
    Information: list[_SynonymRow] = Field(min_length=1)


class _Descriptions(_Envelope):
    Information: list[_DescriptionRow] = Field(min_length=1)


class SynonymAnswer(_Envelope):
    InformationList: _Synonyms


class DescriptionAnswer(_Envelope):
    InformationList: _Descriptions


class _ViewSection(_Envelope):
    TOCHeading: Text = None
    Section: list[_ViewSection] | None = None
    Information: list[dict] | None = None


class _ViewRecord(_Envelope):
    Section: list[_ViewSection] | None = None
    Reference: list[dict] | None = None


class PugViewAnswer(_Envelope):
    """``{"Record": {"Section": [...], "Reference": [...]}}``."""

    Record: _ViewRecord


EXPECT_CIDS = expect_json(CIDLookupAnswer)
EXPECT_SIMILAR = expect_json(SimilarityAnswer)
EXPECT_PROPERTIES = expect_json(PropertyAnswer)
EXPECT_SYNONYMS = expect_json(SynonymAnswer)
EXPECT_DESCRIPTIONS = expect_json(DescriptionAnswer)
EXPECT_PUG_VIEW = expect_json(PugViewAnswer)


def classify_query(query: str | int) -> tuple[str, str | int]:
    """Decide what a free-text query is: ``("cid", 2244)``, ``("inchikey", ...)``, ``("smiles", ...)`` or ``("name", ...)``.

    Order matters: digits are CIDs, the InChIKey pattern is unambiguous, then anything without
    whitespace that RDKit parses is a SMILES ("CCO", "c1ccccc1"); names ("aspirin", "vitamin C")
    fail to parse or contain spaces. A string that uses SMILES-only characters but does not parse is
    a broken SMILES, reported as such rather than searched as a name.
    """
    if isinstance(query, bool):
        raise InputError(f"compound query {query!r} is not a name, CID, SMILES or InChIKey")
    if isinstance(query, int):
        return "cid", _check_cid(query)
    text = str(query).strip()
    if not text:
        raise InputError("empty compound query: give a name, a PubChem CID, a SMILES or an InChIKey")
    if text.isdigit():
        return "cid", _check_cid(int(text))
    if text.upper().startswith("CID") and text[3:].strip(" :").isdigit():
        return "cid", _check_cid(int(text[3:].strip(" :")))
    if INCHIKEY_RE.match(text):
        return "inchikey", text
    if not any(ch.isspace() for ch in text):
        if try_parse_smiles(text) is not None:
            return "smiles", text
        if _SMILES_ONLY_CHARS & set(text) and not re.search(r"[a-z]{4,}", text):
            raise InvalidSmilesError(f"{shorten(text)} looks like a SMILES but RDKit cannot parse it")
    return "name", text


def _check_cid(cid: int) -> int:
    if isinstance(cid, bool) or not isinstance(cid, int) or cid <= 0:
        raise InputError(f"PubChem CID {cid!r} is not a positive integer")
    return cid


def _float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def compound_from_row(row: dict) -> Compound:
    """One ``PropertyTable.Properties`` row → ``Compound``; accepts the 2025 and the older SMILES keys.

    ``smiles`` is the stereo-aware SMILES: ``SMILES`` now, ``IsomericSMILES`` before 2025 (falling back
    to ``CanonicalSMILES`` when only that was sent). ``connectivity_smiles`` has no stereo:
    ``ConnectivitySMILES`` now, ``CanonicalSMILES`` before.
    """
    smiles = row.get("SMILES") or row.get("IsomericSMILES") or row.get("CanonicalSMILES")
    connectivity = row.get("ConnectivitySMILES") or row.get("CanonicalSMILES")
    return Compound(
        cid=int(row["CID"]),
        title=row.get("Title"),
        iupac_name=row.get("IUPACName"),
        formula=row.get("MolecularFormula"),
        molecular_weight=_float(row.get("MolecularWeight")),
        smiles=smiles,
        connectivity_smiles=connectivity,
        inchi=row.get("InChI"),
        inchikey=row.get("InChIKey"),
        xlogp=_float(row.get("XLogP")),
        tpsa=_float(row.get("TPSA")),
        exact_mass=_float(row.get("MonoisotopicMass")),
        hbond_donors=_int(row.get("HBondDonorCount")),
        hbond_acceptors=_int(row.get("HBondAcceptorCount")),
        rotatable_bonds=_int(row.get("RotatableBondCount")),
        heavy_atoms=_int(row.get("HeavyAtomCount")),
        complexity=_float(row.get("Complexity")),
        charge=_int(row.get("Charge")),
    )


def _int(value: object) -> int | None:
    number = _float(value)
    return None if number is None else int(number)


def descriptions_from_pug_view(record: dict, cid: int) -> list[Description]:
    """The "Record Description" texts of a PUG-View record (whole record or a ``heading=`` slice)."""
    root = record.get("Record", record)
    references = {ref.get("ReferenceNumber"): ref for ref in root.get("Reference", []) or []}
    found: list[Description] = []

    def walk(sections: Iterable[dict]) -> None:
        for section in sections or []:
            if section.get("TOCHeading") == "Record Description":
                for info in section.get("Information", []) or []:
                    strings = (info.get("Value") or {}).get("StringWithMarkup") or []
                    text = " ".join(s.get("String", "") for s in strings).strip()
                    if not text:
                        continue
                    ref = references.get(info.get("ReferenceNumber"), {})
                    found.append(Description(text=text, source=ref.get("SourceName", "PubChem"),
                                             url=ref.get("URL") or pubchem_url(cid)))
            walk(section.get("Section", []))

    walk(root.get("Section", []))
    return found


class _PubChemHTTP(ServiceClient):
    """The HTTP layer plus PubChem's ``Fault`` envelope: ``{"Fault": {"Code": "PUGREST.NotFound", ...}}``."""

    def explain(self, response: requests.Response, what: str, retried: int) -> ServiceError:
        try:
            fault = response.json().get("Fault")
        except (ValueError, AttributeError):
            fault = None
        if not isinstance(fault, dict):
            return super().explain(response, what, retried)
        code = str(fault.get("Code", "PUGREST.Unknown"))
        detail = body_summary(response)
        status = response.status_code
        common = dict(url=response.url, status=status, retried=retried)
        if code == "PUGREST.NotFound" or status == 404:
            subject = "no compound found for" if what.startswith(("name", "CID", "SMILES", "InChIKey")) \
                else "nothing found for"
            return NotFound(self.label, f"{subject} {what} ({detail})", **common)
        if code == "PUGREST.ServerBusy":
            return ServiceError(self.label, f"too busy to answer {what} ({detail}); try again in a minute", **common)
        if code == "PUGREST.Timeout":
            return ServiceError(self.label, f"gave up on {what} at its 30 s limit ({detail}); "
                                            f"ask for fewer records", **common)
        if code == "PUGREST.BadRequest":
            return ServiceError(self.label, f"rejected {what} as a bad request ({detail})", **common)
        return ServiceError(self.label, f"could not answer {what}: HTTP {status} ({detail})", **common)


class PubChemClient(WrapsServiceClient):
    """Look-ups by name, CID, SMILES or InChIKey; batched properties; synonyms; descriptions; similarity."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.http = _PubChemHTTP("pubchem", settings)

    # -- URL helpers --------------------------------------------------------------------------------
    def _pug(self, *parts: str) -> str:
        return self.http.url("rest", "pug", *parts)

    @staticmethod
    def _awkward(smiles: str) -> bool:
        """SMILES that cannot travel in a URL path: PubChem decodes %2F back into '/', so use POST."""
        return "/" in smiles or "\\" in smiles or len(smiles) > 200

    def _cids(self, data: Any, what: str) -> list[int]:
        cids = [int(c) for c in ((data or {}).get("IdentifierList") or {}).get("CID", []) or [] if int(c) > 0]
        if not cids:
            raise NotFound(self.http.label, f"no compound found for {what}")
        return cids

    # -- identifiers → CIDs -------------------------------------------------------------------------
    def cids_for_name(self, name: str) -> list[int]:
        """PubChem's CIDs for a name, in PubChem's relevance order."""
        name = name.strip()
        if not name:
            raise InputError("empty compound name")
        what = f"name {shorten(name)}"
        data = self.http.get_json(self._pug("compound", "name", quote(name, safe=""), "cids", "JSON"), what=what,
                                  expect=EXPECT_CIDS)
        return self._cids(data, what)

    def cids_for_smiles(self, smiles: str) -> list[int]:
        smiles = self._valid_smiles(smiles)
        what = f"SMILES {shorten(smiles)}"
        if self._awkward(smiles):
            data = self.http.post_json(self._pug("compound", "smiles", "cids", "JSON"), {"smiles": smiles}, what=what,
                                       expect=EXPECT_CIDS)
        else:
            data = self.http.get_json(self._pug("compound", "smiles", quote(smiles, safe=""), "cids", "JSON"),
                                      what=what, expect=EXPECT_CIDS)
        return self._cids(data, what)

    def cids_for_inchikey(self, key: str) -> list[int]:
        key = key.strip()
        if not INCHIKEY_RE.match(key):
            raise InputError(f"{shorten(key)} is not an InChIKey (expected 14-10-1 upper-case letters, e.g. "
                             f"BSYNRYMUTXBXSQ-UHFFFAOYSA-N)")
        what = f"InChIKey {key}"
        return self._cids(self.http.get_json(self._pug("compound", "inchikey", key, "cids", "JSON"), what=what,
                                             expect=EXPECT_CIDS), what)

    @staticmethod
    def _valid_smiles(smiles: str) -> str:
        smiles = (smiles or "").strip()
        if try_parse_smiles(smiles) is None:
            raise InvalidSmilesError(f"SMILES {shorten(smiles)} is not valid: RDKit cannot parse it")
        return smiles

    # -- look-ups -------------------------------------------------------------------------------------
    def compound(self, query: str | int, *, details: bool = True) -> Compound:
        """Auto-detects a CID, InChIKey, SMILES or name; ``details`` adds synonyms and descriptions."""
        kind, value = classify_query(query)
        if kind == "cid":
            return self.by_cid(int(value), details=details)
        if kind == "inchikey":
            return self.by_inchikey(str(value), details=details)
        if kind == "smiles":
            return self.by_smiles(str(value), details=details)
        return self.by_name(str(value), details=details)

    def by_cid(self, cid: int, *, details: bool = True) -> Compound:
        cid = _check_cid(int(cid) if isinstance(cid, str) and cid.isdigit() else cid)
        found = self.properties([cid])
        if not found:
            raise NotFound(self.http.label, f"no compound found for CID {cid}")
        return self._with_details(found[0]) if details else found[0]

    def by_name(self, name: str, *, details: bool = True) -> Compound:
        """The compound a name means: when PubChem matches several, the one titled exactly so, else its first."""
        cids = self.cids_for_name(name)
        if len(cids) > 1:
            found = self.properties(cids[:PROPERTY_BATCH_FOR_NAMES])
            exact = [c for c in found if (c.title or "").casefold() == name.strip().casefold()]
            if exact:
                chosen = self._with_details(exact[0]) if details else exact[0]
                return chosen.model_copy(update={"asked_as": name.strip()})
        return self.by_cid(cids[0], details=details).model_copy(update={"asked_as": name.strip()})

    def by_smiles(self, smiles: str, *, details: bool = True) -> Compound:
        return self.by_cid(self.cids_for_smiles(smiles)[0], details=details)

    def by_inchikey(self, key: str, *, details: bool = True) -> Compound:
        return self.by_cid(self.cids_for_inchikey(key)[0], details=details)

    def candidates(self, name: str, limit: int = 5) -> list[Compound]:
        """Every CID PubChem matches to ``name`` (up to ``limit``), exact title matches first, then PubChem's order."""
        if limit < 1:
            raise InputError(f"limit must be at least 1, got {limit}")
        cids = self.cids_for_name(name)[:limit]
        compounds = self.properties(cids)
        wanted = name.strip().casefold()
        return sorted(compounds, key=lambda c: 0 if (c.title or "").casefold() == wanted else 1)

    def properties(self, cids: Sequence[int], batch_size: int = PROPERTY_BATCH) -> list[Compound]:
        """Properties of many CIDs in one POST per ``batch_size`` CIDs; the order of ``cids`` is kept."""
        ordered = list(dict.fromkeys(_check_cid(int(c)) for c in cids))
        if not ordered:
            raise InputError("properties() needs at least one CID")
        url = self._pug("compound", "cid", "property", ",".join(PROPERTIES), "JSON")
        rows: dict[int, Compound] = {}
        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {batch_size}")
        batches = range(0, len(ordered), batch_size)
        for number, start in enumerate(batches, 1):
            batch = ordered[start:start + batch_size]
            if len(batches) > 1:
                report(f"PubChem properties: batch {number} of {len(batches)} ({len(batch)} CIDs)",
                       service="pubchem", batch=number, batches=len(batches))
            label = f"CID {batch[0]}" if len(batch) == 1 else f"CIDs {batch[0]}…{batch[-1]} ({len(batch)})"
            data = self.http.post_json(url, {"cid": ",".join(map(str, batch))}, what=label, expect=EXPECT_PROPERTIES)
            table = (data or {}).get("PropertyTable") or {}
            for row in table.get("Properties", []) or []:
                if "CID" in row:
                    compound = compound_from_row(row)
                    rows[compound.cid] = compound
        return [rows[c] for c in ordered if c in rows]

    def synonyms(self, cid: int, top: int = 10) -> list[str]:
        """The first ``top`` synonyms (PubChem lists the most common names first)."""
        cid = _check_cid(cid)
        data = self.http.get_json(self._pug("compound", "cid", str(cid), "synonyms", "JSON"),
                                  what=f"synonyms of CID {cid}", expect=EXPECT_SYNONYMS)
        info = ((data or {}).get("InformationList") or {}).get("Information") or [{}]
        return list(info[0].get("Synonym", []))[:top]

    def descriptions(self, cid: int) -> list[Description]:
        """Textual descriptions from ``/description`` and, when that has none, PUG-View's Record Description."""
        cid = _check_cid(cid)
        found: list[Description] = []
        try:
            data = self.http.get_json(self._pug("compound", "cid", str(cid), "description", "JSON"),
                                      what=f"descriptions of CID {cid}", expect=EXPECT_DESCRIPTIONS)
            for info in ((data or {}).get("InformationList") or {}).get("Information", []) or []:
                text = (info.get("Description") or "").strip()
                if text:
                    found.append(Description(text=text, source=info.get("DescriptionSourceName", "PubChem"),
                                             url=info.get("DescriptionURL") or pubchem_url(cid)))
        except NotFound:
            pass
        if not found:
            try:
                record = self.http.get_json(self.http.url("rest", "pug_view", "data", "compound", str(cid), "JSON"),
                                            params={"heading": "Record Description"},
                                            what=f"PUG-View record of CID {cid}", expect=EXPECT_PUG_VIEW)
                found = descriptions_from_pug_view(record or {}, cid)
            except NotFound:
                pass
        unique: dict[str, Description] = {}
        for description in found:
            unique.setdefault(description.text, description)
        return list(unique.values())

    def similar(self, smiles_or_cid: str | int, threshold: int = 90, max_records: int = 20) -> list[Compound]:
        """Compounds with 2-D Tanimoto similarity ≥ ``threshold`` % (PubChem ``fastsimilarity_2d``).

        The query compound itself is left out when it is given as a CID (it is trivially 100 % similar).
        """
        if not isinstance(threshold, int) or not 0 <= threshold <= 100:
            raise InputError(f"similarity threshold must be an integer percentage 0–100, got {threshold!r}")
        if not isinstance(max_records, int) or max_records < 1:
            raise InputError(f"max_records must be a positive integer, got {max_records!r}")
        params = {"Threshold": threshold, "MaxRecords": max_records + 1}
        query_cid = None
        if isinstance(smiles_or_cid, int) or str(smiles_or_cid).strip().isdigit():
            query_cid = _check_cid(int(smiles_or_cid))
            what = f"compounds similar to CID {query_cid}"
            data = self.http.get_json(self._pug("compound", "fastsimilarity_2d", "cid", str(query_cid), "cids",
                                                "JSON"), params=params, what=what, expect=EXPECT_SIMILAR)
        else:
            smiles = self._valid_smiles(str(smiles_or_cid))
            what = f"compounds similar to SMILES {shorten(smiles)}"
            if self._awkward(smiles):
                data = self.http.post_json(self._pug("compound", "fastsimilarity_2d", "smiles", "cids", "JSON"),
                                           {"smiles": smiles}, params=params, what=what, expect=EXPECT_SIMILAR)
            else:
                data = self.http.get_json(self._pug("compound", "fastsimilarity_2d", "smiles",
                                                    quote(smiles, safe=""), "cids", "JSON"), params=params, what=what,
                                          expect=EXPECT_SIMILAR)
        found = [int(c) for c in ((data or {}).get("IdentifierList") or {}).get("CID", []) or [] if int(c) > 0]
        cids = [c for c in found if c != query_cid][:max_records]
        return self.properties(cids) if cids else []

    # -- details ----------------------------------------------------------------------------------------
    def _with_details(self, compound: Compound) -> Compound:
        """Add synonyms and descriptions; a missing part (not found, or not cached offline) is reported, not fatal."""
        updates: dict[str, Any] = {}
        for field, fetch in (("synonyms", lambda: self.synonyms(compound.cid)),
                             ("descriptions", lambda: self.descriptions(compound.cid))):
            try:
                updates[field] = fetch()
            except (NotFound, OfflineMiss) as error:
                report(f"PubChem CID {compound.cid}: no {field} ({error})", service="pubchem", cid=compound.cid)
        return compound.model_copy(update=updates)
