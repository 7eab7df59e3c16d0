"""Every biomedgpt tool as a LangChain tool: ``all_tools()``, ``TOOLS_BY_NAME["pubchem_lookup"]``.

Use: ``llm.bind_tools(all_tools())`` or ``ToolNode(all_tools())``; ``tool.invoke(tool_call)`` returns a
``ToolMessage`` whose ``content`` is a short text for the LLM (with the bracketed source labels to
cite, e.g. ``[PubChem CID 2244]``) and whose ``artifact`` is the typed record(s) as dicts (the JSON
keys of the architecture page), so the graph keeps records, not prose.

Why ``StructuredTool`` with pydantic schemas: the schema is what a chat model sees, so every
argument has a description and bounds; bad arguments fail validation before any request. Errors
inside a tool raise (``BiomedGPTError`` messages name the input and the problem); the graph's
``ToolNode`` turns them into messages the planner can react to.

The clients and the literature store come from a ``Services`` (``tools/services.py``): inside biomedgpt's
graph those of the run's context (``Context.services``, read through LangGraph's ``get_runtime()``, as the
react-agent template reads its ``Context``), so each ``Assistant`` uses its own settings. Code that runs a tool
outside a graph passes them explicitly to the tool's function (the MCP server: ``tool.func(**args,
services=services)``); otherwise the default ``Services`` of the process-wide settings serve.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from biomedgpt.core.chem import try_parse_smiles
from biomedgpt.core.errors import InputError
from biomedgpt.model.conversation import CAPTION_QUESTION as DEFAULT_MOLECULE_QUESTION
from biomedgpt.tools.biomedgpt_tool import (
    describe_molecule,
    describe_protein,
    resolve_molecule,
    resolve_protein,
)
from biomedgpt.tools.errors import NotFound
from biomedgpt.tools.properties import molecule_properties
from biomedgpt.tools.records import (
    Compound,
    ModelAnswer,
    MoleculeProperties,
    Passage,
    ProteinEntry,
    SimilarHit,
)
from biomedgpt.tools.services import Services, services_in_force
from pydantic import BaseModel, Field, model_validator

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool, StructuredTool

#: The tools' default number of results, in one place.
DEFAULT_K = 5
DEFAULT_SIZE = 5
DEFAULT_PUBMED_N = 10
DEFAULT_SIMILAR_THRESHOLD = 90
DEFAULT_SIMILAR_RECORDS = 10

# ------------------------------------------------------------------------------------------ content


def _dump(record: Any) -> dict:
    return record.model_dump(mode="json") if isinstance(record, BaseModel) else dict(record)


# ------------------------------------------------------------------------------------------ schemas


class PubChemLookupInput(BaseModel):
    query: str = Field(min_length=1, max_length=2000,
                       description="A compound name (e.g. 'aspirin'), PubChem CID (e.g. '2244'), SMILES or InChIKey.")


class PubChemSimilarInput(BaseModel):
    query: str = Field(min_length=1, max_length=2000,
                       description="The query structure: SMILES, PubChem CID or compound name (resolved first).")
    threshold: int = Field(DEFAULT_SIMILAR_THRESHOLD, ge=50, le=100,
                           description="PubChem 2D Tanimoto threshold in percent (default 90).")
    max_records: int = Field(DEFAULT_SIMILAR_RECORDS, ge=1, le=100, description="Most compounds to return.")


class UniProtLookupInput(BaseModel):
    query: str = Field(min_length=1, max_length=500,
                       description="A UniProt accession (e.g. 'P05067'), or a protein or gene name (e.g. "
                                   "'hemoglobin', 'BRCA1'): the best-matching reviewed entry is returned.")
    organism: str | None = Field(None, max_length=200,
                                 description="Optional organism for a name, e.g. 'Homo sapiens' or 'human'.")


class UniProtSearchInput(BaseModel):
    query: str = Field(min_length=1, max_length=2000,
                       description="UniProt query syntax or free text, e.g. 'insulin AND organism_id:9606'.")
    size: int = Field(DEFAULT_SIZE, ge=1, le=50, description="How many entries to return.")


class LiteratureSearchInput(BaseModel):
    query: str = Field(min_length=1, max_length=2000, description="A literature topic in plain words.")
    k: int = Field(DEFAULT_K, ge=1, le=50, description="How many passages to return.")


class PubMedFetchInput(BaseModel):
    query: str = Field(min_length=1, max_length=2000,
                       description="A PubMed query (E-utilities esearch syntax), e.g. 'BRCA1 breast cancer' "
                                   "or '12345678[pmid]'.")
    n: int = Field(DEFAULT_PUBMED_N, ge=1, le=200, description="How many abstracts to fetch and ingest.")


class MoleculePropertiesInput(BaseModel):
    smiles: str = Field(min_length=1, max_length=5000,
                        description="The molecule as SMILES (a compound name or CID is resolved through PubChem first).")


class SimilarKnownInput(BaseModel):
    smiles: str | None = Field(None, max_length=5000,
                               description="A molecule as SMILES (a compound name or CID is resolved through "
                                           "PubChem first). Give this OR sequence.")
    sequence: str | None = Field(None, max_length=100_000,
                                 description="A protein sequence (a UniProt accession or protein name is resolved "
                                             "through UniProt first). Give this OR smiles.")
    k: int = Field(DEFAULT_K, ge=1, le=50, description="How many nearest known entries to return.")

    @model_validator(mode="after")
    def _exactly_one(self) -> SimilarKnownInput:
        if (self.smiles is None) == (self.sequence is None):
            raise ValueError("give exactly one of 'smiles' (a molecule) or 'sequence' (a protein)")
        return self


class DescribeMoleculeInput(BaseModel):
    query: str = Field(min_length=1, max_length=5000,
                       description="The molecule: SMILES, PubChem CID or compound name.")
    question: str = Field(DEFAULT_MOLECULE_QUESTION, max_length=2000,
                          description="The question for the model about this molecule.")


class DescribeProteinInput(BaseModel):
    query: str = Field(min_length=1, max_length=100_000,
                       description="The protein: amino-acid sequence (or FASTA), UniProt accession or protein name.")
    question: str = Field("What is the function of this protein?", max_length=2000,
                          description="The question for the model about this protein.")


# ------------------------------------------------------------------------------------------ functions


def _pubchem_lookup(query: str, *, services: Services | None = None) -> tuple[str, dict]:
    compound = (services or services_in_force()).pubchem.compound(query.strip())  # with synonyms and descriptions when PubChem has them
    return compound.chat_text(), _dump(compound)


def _resolve_cid_or_smiles(query: str, services: Services) -> str:
    """PubChem's similarity search takes a SMILES or CID; a name is resolved to its CID first."""
    text = query.strip()
    if text.isdigit() or try_parse_smiles(text) is not None:
        return text
    return str(services.pubchem.compound(text, details=False).cid)


def _pubchem_similar(query: str, threshold: int = DEFAULT_SIMILAR_THRESHOLD,
                     max_records: int = DEFAULT_SIMILAR_RECORDS, *,
                     services: Services | None = None) -> tuple[str, list[dict]]:
    services = services or services_in_force()
    target = _resolve_cid_or_smiles(query, services)
    found = list(services.pubchem.similar(target, threshold=threshold, max_records=max_records))
    if not found:
        return f"PubChem found no compounds with 2D similarity >= {threshold}% to {query!r}.", []
    lines = [f"PubChem compounds with 2D similarity >= {threshold}% to {query!r}:"]
    lines += [f"{n}. {compound.chat_text()}" for n, compound in enumerate(found, 1)]
    return "\n".join(lines), [_dump(item) for item in found]


def _uniprot_lookup(query: str, organism: str | None = None, *,
                    services: Services | None = None) -> tuple[str, dict]:
    text = query.strip()
    client = (services or services_in_force()).uniprot
    found = client.find(text, organism=organism)
    if not found:
        where = f" in {organism}" if organism else ""
        raise NotFound("UniProt", f"no entry found for {text!r}{where}")
    return found[0].chat_text(), _dump(found[0])


def _uniprot_search(query: str, size: int = DEFAULT_SIZE, *,
                    services: Services | None = None) -> tuple[str, list[dict]]:
    result = (services or services_in_force()).uniprot.search(query, size=size)
    entries = list(result.entries)[:size]
    if not entries:
        return f"UniProt found no entries for {query!r}.", []
    head = f"UniProt entries for {query!r} ({result.total} in total, showing {len(entries)}):"
    lines = [head] + [f"{n}. {e.chat_text()}" for n, e in enumerate(entries, 1)]
    return "\n".join(lines), [_dump(e) for e in entries]


def _literature_search(query: str, k: int = DEFAULT_K, *,
                       services: Services | None = None) -> tuple[str, dict]:
    store = (services or services_in_force()).literature  # ingests the bundled corpus on its first search
    asked = re.fullmatch(r"\s*PMID[:\s]*(\d{1,9})\s*", query, re.I)  # one record by its identifier
    passages = list(store.search(query, k=k, pmid=asked.group(1) if asked else None))
    searched = store.count()
    if not passages:
        return f"The literature store has no passages for {query!r} ({searched} chunks searched).", \
            {"passages": [], "searched": searched}
    lines = [f"Literature passages for {query!r} (cite by the bracketed label; {searched} chunks searched):"]
    lines += [f"{n}. {p.chat_text()}" for n, p in enumerate(passages, 1)]
    return "\n".join(lines), {"passages": [_dump(p) for p in passages], "searched": searched}


def _pubmed_fetch(query: str, n: int = DEFAULT_PUBMED_N, *,
                  services: Services | None = None) -> tuple[str, dict]:
    report = (services or services_in_force()).literature.pubmed_fetch(query.strip(), n)
    text = (f"Fetched {report.records} PubMed abstracts for {query!r} into the literature store "
            f"({report.chunks_added} new chunks, {report.chunks_skipped} already stored"
            + (f", {report.skipped_rows} records unreadable" if report.skipped_rows else "")
            + "). Use literature_search to read and cite them.")
    return text, {"query": query, **_dump(report)}


def _molecule_properties(smiles: str, *, services: Services | None = None) -> tuple[str, dict]:
    resolved = resolve_molecule(smiles, services)  # a SMILES needs no services: they are built only for a name
    props = molecule_properties(resolved.smiles)
    if resolved.compound is not None:  # asked by name or CID: keep the name people know it by
        props = props.model_copy(update={"title": resolved.compound.title or smiles.strip()})
    return props.chat_text(), _dump(props)


def _similar_known(smiles: str | None = None, sequence: str | None = None, k: int = DEFAULT_K, *,
                   services: Services | None = None) -> tuple[str, list]:
    # deferred: the similarity module loads PubChem's client and the HTTP layer (requests-cache, ~0.2 s), which an
    # RDKit-only question never needs
    from biomedgpt.tools.similarity import similar_known

    if (smiles is None) == (sequence is None):
        raise InputError("similar_known needs exactly one of smiles= (a molecule) or sequence= (a protein)")
    services = services or services_in_force()
    # A user asks "what is this?": an identical reference entry is the best evidence there is, so the query is
    # not left out here (training and evaluation leave it out through model/prompts' one exclusion rule).
    if smiles is not None:
        resolved = resolve_molecule(smiles, services)
        hits = similar_known(smiles=resolved.smiles, k=k, online=not services.settings.offline, leave_self_out=False,
                             pubchem=services.pubchem)
        what = f"molecule {smiles!r}"
    else:
        protein = resolve_protein(sequence, services=services)
        hits = similar_known(sequence=protein.sequence, k=k, leave_self_out=False)
        shown = sequence if len(sequence) <= 30 else sequence[:27] + "..."
        what = f"protein {shown!r}"
    if not hits:
        return f"No similar known entries found for {what}.", []
    lines = [f"Nearest known entries for {what} (similarity 1.00 is the query itself):"]
    lines += [f"{n}. {h.chat_text()}" for n, h in enumerate(hits, 1)]
    return "\n".join(lines), [_dump(h) for h in hits]


def _describe_molecule(query: str, question: str = DEFAULT_MOLECULE_QUESTION, *,
                       services: Services | None = None) -> tuple[str, dict]:
    answer = describe_molecule(query, question, services=services)
    return answer.chat_text(), _dump(answer)


def _describe_protein(query: str, question: str = "What is the function of this protein?", *,
                      services: Services | None = None) -> tuple[str, dict]:
    answer = describe_protein(query, question, services=services)
    return answer.chat_text(), _dump(answer)


# ------------------------------------------------------------------------------------------ tools

_SPECS: tuple[tuple[str, Callable[..., Any], type[BaseModel], str], ...] = (
    ("pubchem_lookup", _pubchem_lookup, PubChemLookupInput,
     "Look up one compound in PubChem by name, CID, SMILES or InChIKey. Returns its CID, title, formula, "
     "molecular weight, SMILES, InChIKey, XLogP, TPSA, synonyms and a description. Cite as [PubChem CID n]."),
    ("pubchem_similar", _pubchem_similar, PubChemSimilarInput,
     "Find PubChem compounds structurally similar to a molecule (PubChem fastsimilarity_2d, Tanimoto "
     "threshold in percent). Needs the network. Cite each hit as [PubChem CID n]."),
    ("uniprot_lookup", _uniprot_lookup, UniProtLookupInput,
     "Look up a protein in UniProtKB by accession, or by protein/gene name (best reviewed match). Returns "
     "its name, genes, organism, function, subcellular locations, family, sequence length and mass. "
     "Cite as [UniProt ACCESSION]."),
    ("uniprot_search", _uniprot_search, UniProtSearchInput,
     "Search UniProtKB and return the top entries (accession, name, organism, function). Use when several "
     "proteins may match. Cite as [UniProt ACCESSION]."),
    ("literature_search", _literature_search, LiteratureSearchInput,
     "Semantic search over the local literature store (bundled PubMed abstracts plus anything ingested). "
     "Works offline. Returns passages with PMIDs; cite as [PMID n]."),
    ("pubmed_fetch", _pubmed_fetch, PubMedFetchInput,
     "Fetch fresh abstracts from PubMed (E-utilities esearch + efetch) for a query and add them to the "
     "literature store; then use literature_search. Needs the network."),
    ("molecule_properties", _molecule_properties, MoleculePropertiesInput,
     "Compute molecular properties locally with RDKit from a SMILES: formula, average and exact mass, "
     "Crippen logP, TPSA, H-bond donors/acceptors, rotatable bonds, rings, Lipinski's rule of five. "
     "Works offline, also for structures PubChem has never seen. Cite as [RDKit]."),
    ("similar_known", _similar_known, SimilarKnownInput,
     "Find the nearest known molecules (give smiles; Morgan-fingerprint Tanimoto over ChEBI-20 references, or "
     "over the user's BIOMEDGPT_MOLECULE_DB file when that is set, plus PubChem when online) or proteins (give "
     "sequence; phmmer alignment to Swiss-Prot references and the BIOMEDGPT_PROTEIN_DB file, with E-value, identity "
     "and coverage; a hit marked 'not a close homologue' is no evidence), each with its description. Evidence for what an unknown structure may "
     "be or do. Cite each hit by the label it comes with."),
    ("describe_molecule", _describe_molecule, DescribeMoleculeInput,
     "Ask the BioMedGPT multimodal model a question about a molecule (SMILES, CID or name); the structure "
     "is encoded by its graph encoder. The answer is model output, not a database fact: cite as [BioMedGPT]."),
    ("describe_protein", _describe_protein, DescribeProteinInput,
     "Ask the BioMedGPT multimodal model a question about a protein (sequence, accession or name); the "
     "sequence is encoded by ESM-2. The answer is model output, not a database fact: cite as [BioMedGPT]."),
)


#: The record type each tool's artifact holds: the graph files results by tool, never by the keys they happen to have.
TOOL_RECORDS: dict[str, type[BaseModel] | None] = {
    "pubchem_lookup": Compound, "pubchem_similar": Compound, "uniprot_lookup": ProteinEntry,
    "uniprot_search": ProteinEntry, "literature_search": Passage, "pubmed_fetch": None,
    "molecule_properties": MoleculeProperties, "similar_known": SimilarHit, "describe_molecule": ModelAnswer,
    "describe_protein": ModelAnswer,
}


def record_type_of(tool: BaseTool) -> type[BaseModel] | None:
    """The record type a tool declares (``tool.metadata["record"]``; biomedgpt's own tools by name)."""
    return (tool.metadata or {}).get("record") or TOOL_RECORDS.get(tool.name)


def records_of(tool_name: str, artifact: Any, record_type: type[BaseModel] | None = None) -> list[BaseModel]:
    """The typed records in a tool's artifact (a record dict, a list of them, or ``{"passages": [...]}``)."""
    record_type = record_type or TOOL_RECORDS.get(tool_name)
    if record_type is None or artifact is None:
        return []
    if isinstance(artifact, dict) and "passages" in artifact:
        artifact = artifact["passages"]
    items = artifact if isinstance(artifact, list) else [artifact]
    return [record_type.model_validate(item) for item in items]


#: name → (function, argument schema, description): the tools without LangChain (``agent/fast_path.py`` calls the
#: functions itself after validating the arguments exactly as ``StructuredTool`` does).
SPECS: dict[str, tuple[Callable[..., Any], type[BaseModel], str]] = {spec[0]: spec[1:] for spec in _SPECS}
TOOL_NAMES: tuple[str, ...] = tuple(SPECS)


def _build(name: str, func: Callable[..., Any], schema: type[BaseModel], description: str) -> StructuredTool:
    # deferred: LangChain's tools cost ~0.3 s to import; only a graph, the MCP server or a caller needs them
    from langchain_core.tools import StructuredTool

    return StructuredTool.from_function(func=func, name=name, description=description, args_schema=schema,
                                        response_format="content_and_artifact",
                                        metadata={"record": TOOL_RECORDS[name]})


def make_tool(name: str) -> StructuredTool:
    """A fresh instance of the tool called ``name`` (for tests and for callers that configure tools)."""
    for spec in _SPECS:
        if spec[0] == name:
            return _build(*spec)
    raise InputError(f"unknown tool {name!r}; known tools: {', '.join(s[0] for s in _SPECS)}")


def _tools_by_name() -> dict[str, StructuredTool]:
    tools = globals().get("TOOLS_BY_NAME")
    if tools is None:
        tools = globals()["TOOLS_BY_NAME"] = {spec[0]: _build(*spec) for spec in _SPECS}
    return tools


def __getattr__(name: str) -> Any:
    # ``TOOLS_BY_NAME`` (name → StructuredTool) is built on first use: LangChain loads only when a graph, the MCP
    # server or a caller asks for the LangChain tools.
    if name == "TOOLS_BY_NAME":
        return _tools_by_name()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def all_tools() -> list[BaseTool]:
    """Every tool, in a stable order (look-ups first, then local evidence, then the model)."""
    return list(_tools_by_name().values())
