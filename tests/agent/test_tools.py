"""The LangChain tools (standard ``ToolsUnitTests`` plus real calls) and the BioMedGPT tool.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q tests/agent/test_tools.py``.
PubChem and UniProt are a loopback ``pytest-httpserver`` serving the recorded bodies in
``tests/data/pubchem`` and ``tests/data/uniprot``; the model is the ``tiny`` preset (untrained, fast).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from langchain_core.messages import ToolMessage
from langchain_tests.unit_tests import ToolsUnitTests
from pytest_httpserver import HTTPServer

from biomedgpt.core.errors import InputError, InvalidSequenceError
from biomedgpt.core.settings import reset_settings
from biomedgpt.tools import langchain_tools as lt
from biomedgpt.tools.biomedgpt_tool import (
    GENERATION_PRESETS,
    UNTRAINED_NOTE,
    StructureNotResolved,
    describe_molecule,
    describe_protein,
)

DATA = Path(__file__).resolve().parents[1] / "data"
ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
HBA = "MVLSPADKTNVKAAWGKVGAHAGEYGAEALERMFLSFPTTKTYFPHFDLSHGSAQVKGHGKKVADALTNAVAHVDDMPNALSALSDLHAHKL"


def _body(*parts: str) -> str:
    return DATA.joinpath(*parts).read_text()


@pytest.fixture(scope="module")
def tiny_model():
    from biomedgpt.model import load_model

    return load_model("tiny")


@pytest.fixture
def services(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> HTTPServer:
    """PubChem (aspirin = CID 2244) and UniProt (P05067, a search) on 127.0.0.1, no retries.

    A fresh BIOMEDGPT_HOME gives a fresh HTTP cache, so the server log shows every request
    (the loopback server's port is shared by the whole test session)."""
    base = httpserver.url_for("").rstrip("/")
    monkeypatch.setenv("BIOMEDGPT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BIOMEDGPT_PUBCHEM_URL", base)
    monkeypatch.setenv("BIOMEDGPT_UNIPROT_URL", base + "/uniprot")
    monkeypatch.setenv("BIOMEDGPT_HTTP__MAX_RETRIES", "0")
    monkeypatch.setenv("BIOMEDGPT_HTTP__READ_TIMEOUT", "5")
    reset_settings()
    json_type = {"content_type": "application/json"}
    httpserver.expect_request("/rest/pug/compound/name/aspirin/cids/JSON").respond_with_data(
        _body("pubchem", "compound_name_aspirin_cids.transcribed.json"), **json_type)
    httpserver.expect_request(re.compile(r"/rest/pug/compound/name/[^/]+/cids/JSON")).respond_with_data(
        _body("pubchem", "compound_name_no_hit_cids_404.json"), status=404, **json_type)
    httpserver.expect_request(re.compile(r"/rest/pug/compound/cid/property/.+/JSON"), method="POST").respond_with_data(
        _body("pubchem", "compound_cid_5564_2244_property_all.json"), **json_type)
    httpserver.expect_request("/rest/pug/compound/cid/2244/synonyms/JSON").respond_with_data(
        _body("pubchem", "compound_name_aspirin_synonyms.json"), **json_type)
    httpserver.expect_request("/rest/pug/compound/cid/2244/description/JSON").respond_with_data(
        _body("pubchem", "compound_cid_2244_description.synthetic.json"), **json_type)
    httpserver.expect_request("/rest/pug/compound/fastsimilarity_2d/cid/2244/cids/JSON").respond_with_data(
        _body("pubchem", "compound_fastsimilarity_2d_cid_2244_cids.synthetic.json"), **json_type)
    httpserver.expect_request("/uniprot/uniprotkb/P05067.json").respond_with_data(
        _body("uniprot", "uniprotkb_P05067.json"), **json_type)
    httpserver.expect_request("/uniprot/uniprotkb/search").respond_with_data(
        _body("uniprot", "uniprotkb_search_glucose_size2_facets.json"), headers={"X-Total-Results": "2"},
        **json_type)
    return httpserver


def _call(name: str, **args) -> ToolMessage:
    return lt.TOOLS_BY_NAME[name].invoke({"name": name, "args": args, "id": "call-1", "type": "tool_call"})


# ------------------------------------------------------------------------------------------ standard tests


class _Standard(ToolsUnitTests):
    name = ""
    example: dict = {}

    @property
    def tool_constructor(self):
        return lt.make_tool(self.name)

    @property
    def tool_invoke_params_example(self) -> dict:
        return self.example


class TestPubChemLookupStandard(_Standard):
    name, example = "pubchem_lookup", {"query": "aspirin"}


class TestPubChemSimilarStandard(_Standard):
    name, example = "pubchem_similar", {"query": ASPIRIN, "threshold": 90, "max_records": 10}


class TestUniProtLookupStandard(_Standard):
    name, example = "uniprot_lookup", {"query": "P05067"}


class TestUniProtSearchStandard(_Standard):
    name, example = "uniprot_search", {"query": "insulin AND organism_id:9606", "size": 5}


class TestLiteratureSearchStandard(_Standard):
    name, example = "literature_search", {"query": "BRCA1 breast cancer", "k": 5}


class TestPubMedFetchStandard(_Standard):
    name, example = "pubmed_fetch", {"query": "BRCA1 breast cancer", "n": 10}


class TestMoleculePropertiesStandard(_Standard):
    name, example = "molecule_properties", {"smiles": ASPIRIN}


class TestSimilarKnownStandard(_Standard):
    name, example = "similar_known", {"smiles": ASPIRIN, "k": 5}


class TestDescribeMoleculeStandard(_Standard):
    name, example = "describe_molecule", {"query": ASPIRIN, "question": "Please describe this molecule."}


class TestDescribeProteinStandard(_Standard):
    name, example = "describe_protein", {"query": HBA, "question": "What is the function of this protein?"}


def test_tool_set_names_and_descriptions():
    tools = lt.all_tools()
    assert [t.name for t in tools] == list(lt.TOOLS_BY_NAME) == [
        "pubchem_lookup", "pubchem_similar", "uniprot_lookup", "uniprot_search", "literature_search",
        "pubmed_fetch", "molecule_properties", "similar_known", "describe_molecule", "describe_protein"]
    for tool in tools:
        assert tool.response_format == "content_and_artifact"
        assert len(tool.description) > 60
        schema = tool.tool_call_schema.model_json_schema()
        assert all(prop.get("description") for prop in schema["properties"].values()), tool.name
    with pytest.raises(InputError, match="unknown tool 'nope'"):
        lt.make_tool("nope")


def test_schema_rejects_bad_arguments_before_any_work():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="exactly one"):
        lt.TOOLS_BY_NAME["similar_known"].invoke({"smiles": ASPIRIN, "sequence": HBA})
    with pytest.raises(ValidationError):
        lt.TOOLS_BY_NAME["literature_search"].invoke({"query": "x", "k": 0})


# ------------------------------------------------------------------------------------------ real calls


def test_molecule_properties_tool_offline(monkeypatch):
    monkeypatch.setenv("BIOMEDGPT_OFFLINE", "1")
    reset_settings()
    message = _call("molecule_properties", smiles=ASPIRIN)
    assert isinstance(message, ToolMessage)
    assert "[RDKit]" in message.content and "C9H8O4" in message.content
    assert message.artifact["formula"] == "C9H8O4"
    assert message.artifact["average_mass"] == pytest.approx(180.16, abs=0.01)
    assert message.artifact["lipinski_pass"] is True


def test_molecule_properties_tool_names_a_bad_smiles():
    with pytest.raises(InputError, match="C1CC"):
        lt.TOOLS_BY_NAME["molecule_properties"].invoke({"smiles": "C1CC"})


def test_similar_known_tool_offline_molecule_and_protein(monkeypatch):
    monkeypatch.setenv("BIOMEDGPT_OFFLINE", "1")
    reset_settings()
    message = _call("similar_known", smiles=ASPIRIN, k=3)
    assert len(message.artifact) == 3
    assert all(hit["kind"] == "molecule" and 0 <= hit["similarity"] <= 1 for hit in message.artifact)
    assert message.artifact == sorted(message.artifact, key=lambda h: -h["similarity"])
    assert "1. [" in message.content
    # proteins are aligned (phmmer): hemoglobin alpha has no homologue among the shipped 900 Swiss-Prot proteins
    message = _call("similar_known", sequence=HBA, k=2)
    assert all(hit["evalue"] > 1e-5 for hit in message.artifact) and len(message.artifact) <= 1
    from biomedgpt.model.alignment import shipped_database

    kunitz = shipped_database().sequence(shipped_database().ids.index("C0HM46"))  # a paralogue ships too
    message = _call("similar_known", sequence=kunitz, k=2)
    assert [hit["kind"] for hit in message.artifact] == ["protein", "protein"]
    assert "UniProt" in message.content and "E-value" in message.content


def test_molecule_properties_tool_resolves_a_name_through_pubchem(services):
    message = _call("molecule_properties", smiles="aspirin")  # "Does aspirin pass Lipinski's rule?"
    assert message.artifact["formula"] == "C9H8O4" and message.artifact["lipinski_pass"] is True
    assert any("/compound/name/aspirin" in request.path for request, _ in services.log)


def test_pubchem_lookup_tool_against_loopback(services):
    message = _call("pubchem_lookup", query="aspirin")
    assert message.artifact["cid"] == 2244
    assert message.artifact["smiles"] == "CC(=O)OC1=CC=CC=C1C(=O)O"
    assert message.artifact["molecular_weight"] == pytest.approx(180.16, abs=0.01)
    assert "aspirin" in [s.lower() for s in message.artifact["synonyms"]]
    assert "[PubChem CID 2244]" in message.content
    assert "180.16" in message.content


def test_pubchem_similar_tool_resolves_a_name_and_leaves_the_query_out(services):
    message = _call("pubchem_similar", query="aspirin", threshold=90, max_records=5)
    assert [c["cid"] for c in message.artifact] == [5564]
    assert "[PubChem CID 5564]" in message.content and ">= 90%" in message.content
    similarity_requests = [entry for entry, _ in services.log if "fastsimilarity_2d" in entry.path]
    assert [entry.args.get("Threshold") for entry in similarity_requests] == ["90"]


def test_pubchem_lookup_not_found_raises_a_clear_error(services):
    from biomedgpt.tools.errors import NotFound

    with pytest.raises(NotFound, match="nosuchcompoundxyz"):
        lt.TOOLS_BY_NAME["pubchem_lookup"].invoke({"query": "nosuchcompoundxyz"})


def test_uniprot_tools_against_loopback(services):
    message = _call("uniprot_lookup", query="P05067")
    assert message.artifact["accession"] == "P05067"
    assert message.artifact["length"] == 770
    assert "[UniProt P05067]" in message.content
    assert "Function:" in message.content
    message = _call("uniprot_search", query="glucose", size=2)
    assert [e["accession"] for e in message.artifact] == ["P13866", "P19926"]
    assert "2 in total" in message.content


# ------------------------------------------------------------------------------------------ the BioMedGPT tool


def test_describe_molecule_reports_exactly_what_the_model_saw(tiny_model, monkeypatch):
    from biomedgpt.model.conversation import chat_prompt

    monkeypatch.setenv("BIOMEDGPT_OFFLINE", "1")
    reset_settings()
    answer = describe_molecule(ASPIRIN, "What is this molecule used for?", model=tiny_model)
    assert answer.inputs == {"smiles": ASPIRIN, "canonical_smiles": "CC(=O)Oc1ccccc1C(=O)O", "heavy_atoms": 13,
                             "soft_tokens": 13, "generation": GENERATION_PRESETS["default"].kwargs()}
    assert answer.prompt == chat_prompt("What is this molecule used for?", molecules=1)
    assert "<molecule><moleculeHere></molecule> What is this molecule used for? ### Assistant: " in answer.prompt
    assert answer.question == "What is this molecule used for?"
    assert answer.model == "tiny" and answer.trained is False and answer.note == UNTRAINED_NOTE
    assert isinstance(answer.text, str)
    # the splice really used one soft token per heavy atom
    spliced = tiny_model.splice([answer.prompt], [[ASPIRIN]], None, padding_side="left")
    assert [(kind, end - start) for kind, start, end in spliced.spans[0]] == [("molecule", 13)]


def test_describe_molecule_with_retrieval_puts_references_in_the_prompt(tiny_model, monkeypatch):
    monkeypatch.setenv("BIOMEDGPT_OFFLINE", "1")
    reset_settings()
    answer = describe_molecule(ASPIRIN, model=tiny_model, retrieval=True)
    assert "Similar known molecules" in answer.prompt
    assert len(answer.inputs["retrieved"]) == 3
    for ident in answer.inputs["retrieved"]:
        assert f"CID {ident}" in answer.prompt
    plain = describe_molecule(ASPIRIN, model=tiny_model)  # tiny was not trained with retrieval
    assert "Similar known" not in plain.prompt and "retrieved" not in plain.inputs


def test_describe_molecule_name_offline_is_a_clear_error(tiny_model, monkeypatch):
    monkeypatch.setenv("BIOMEDGPT_OFFLINE", "1")
    reset_settings()
    with pytest.raises(StructureNotResolved, match=r"could not resolve 'aspirin' to a molecular structure.*SMILES"):
        describe_molecule("aspirin", model=tiny_model)


def test_describe_molecule_resolves_a_name_through_pubchem(tiny_model, services):
    answer = describe_molecule("aspirin", model=tiny_model)
    assert answer.inputs["cid"] == 2244 and answer.inputs["query"] == "aspirin"
    assert answer.inputs["smiles"] == "CC(=O)OC1=CC=CC=C1C(=O)O"
    assert answer.inputs["heavy_atoms"] == 13


def test_describe_protein_sequence_and_truncation(tiny_model, monkeypatch):
    monkeypatch.setenv("BIOMEDGPT_OFFLINE", "1")
    reset_settings()
    answer = describe_protein(HBA, model=tiny_model)
    assert answer.inputs["residues"] == len(HBA) and answer.inputs["soft_tokens"] == len(HBA) + 2
    assert answer.inputs["truncated"] is False
    assert "<protein><proteinHere></protein> What is the function of this protein?" in answer.prompt
    long = HBA * 2  # the tiny preset reads at most 126 residues
    answer = describe_protein(long, model=tiny_model)
    limit = tiny_model.config.max_residues
    assert answer.inputs["truncated"] is True
    assert answer.inputs["residues_seen"] == limit and answer.inputs["soft_tokens"] == limit + 2
    assert f"the model read the first {limit}" in answer.note and UNTRAINED_NOTE in answer.note
    with pytest.raises(InvalidSequenceError, match="J"):
        describe_protein(HBA[:30] + "J" + HBA[30:], model=tiny_model)


def test_describe_protein_resolves_an_accession_through_uniprot(tiny_model, services):
    answer = describe_protein("P05067", model=tiny_model)
    assert answer.inputs["accession"] == "P05067" and answer.inputs["residues"] == 770
    assert answer.inputs["truncated"] is True  # 770 residues > tiny's 126


def test_describe_tools_use_the_configured_model(monkeypatch):
    monkeypatch.setenv("BIOMEDGPT_OFFLINE", "1")
    monkeypatch.setenv("BIOMEDGPT_MODEL", "tiny")
    reset_settings()
    message = _call("describe_molecule", query="CCO", question="What is it?")
    assert message.artifact["model"] == "tiny" and message.artifact["inputs"]["heavy_atoms"] == 3
    # the nearest known molecules come first, as the evidence; the model's text after them, labelled
    evidence, model_text = message.content.split("[BioMedGPT] model output")
    # ethanol has no close ChEBI-20 reference (the nearest is CID 18431 at 0.36): said plainly, nothing cited
    assert evidence.startswith("Evidence, the nearest known references: No close reference: the nearest (CID ")
    assert "so no record backs the text below" in evidence and "[ChEBI-20" not in evidence
    assert message.artifact["evidence_searched"] and message.artifact["evidence"][0]["kind"] == "molecule"
    assert "not evidence" in model_text
    message = _call("describe_protein", query=HBA)
    assert message.artifact["inputs"]["residues"] == len(HBA)
    json.dumps(message.artifact)  # artifacts are plain JSON data (checkpointed by the graph)


# ------------------------------------------------------------------------------------------ literature


def test_literature_search_tool_over_the_bundled_corpus(monkeypatch):
    monkeypatch.setenv("BIOMEDGPT_OFFLINE", "1")
    reset_settings()
    message = _call("literature_search", query="BRCA1 germline mutations in breast cancer families", k=3)
    passages = message.artifact["passages"]
    assert len(passages) == 3 and message.artifact["searched"] > 600  # the bundled store's chunk count
    assert all(p["pmid"] and p["text"] for p in passages)
    assert any("BRCA1" in p["text"] or "BRCA1" in (p["title"] or "") for p in passages)
    for passage in passages:
        assert f"[PMID {passage['pmid']}]" in message.content


def test_pubmed_fetch_tool_ingests_through_eutils(httpserver: HTTPServer, monkeypatch, tmp_path):
    monkeypatch.setenv("BIOMEDGPT_HOME", str(tmp_path / "home"))  # its own store: the shared one stays as shipped
    monkeypatch.setenv("BIOMEDGPT_EUTILS_URL", httpserver.url_for("").rstrip("/"))
    monkeypatch.setenv("BIOMEDGPT_HTTP__MAX_RETRIES", "0")
    reset_settings()
    httpserver.expect_request("/esearch.fcgi", method="POST").respond_with_data(
        _body("eutils", "esearch_pubmed.synthetic.json"), content_type="application/json")
    httpserver.expect_request("/efetch.fcgi", method="POST").respond_with_data(
        _body("eutils", "efetch_pubmed_medline.synthetic.txt"), content_type="text/plain")
    message = _call("pubmed_fetch", query="beta-catenin OR BRCA1", n=2)
    assert message.artifact["records"] == 2 and message.artifact["chunks_added"] > 0
    assert "Fetched 2 PubMed abstracts" in message.content
    forms = {entry.form.get("term") for entry, _ in httpserver.log if entry.path == "/esearch.fcgi"}
    assert forms == {"beta-catenin OR BRCA1"}


def test_model_is_loaded_once_and_shared_by_threads(monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    import biomedgpt.model as model_package
    from biomedgpt.tools import biomedgpt_tool

    loads: list[str] = []
    real = model_package.load_model

    def counting(name, **kwargs):
        loads.append(name)
        return real(name, **kwargs)

    monkeypatch.setattr(model_package, "load_model", counting)
    monkeypatch.setattr(biomedgpt_tool, "LOADED_MODELS", biomedgpt_tool._LoadedModels())
    with ThreadPoolExecutor(4) as pool:
        models = list(pool.map(lambda _: biomedgpt_tool.get_model("tiny"), range(8)))
    assert loads == ["tiny"]
    assert all(m is models[0] for m in models)
    # the cache is keyed by (name, device, dtype): "auto" is the device resolve_device picks, one meaning everywhere
    from biomedgpt.core.settings import resolve_device

    assert list(biomedgpt_tool.LOADED_MODELS.models) == [("tiny", resolve_device("auto"), "default")]
    assert biomedgpt_tool.get_model("tiny", device=resolve_device("auto")) is models[0]
    assert loads == ["tiny"]


def test_generation_presets_are_recorded_and_checked(tiny_model, monkeypatch):
    from biomedgpt.core.errors import ConfigError

    monkeypatch.setenv("BIOMEDGPT_OFFLINE", "1")
    reset_settings()
    raw = describe_molecule("CCO", model=tiny_model, generation="raw")
    again = describe_molecule("CCO", model=tiny_model, generation="raw")
    assert raw.text == again.text  # greedy: the same input gives the same answer
    assert raw.inputs["generation"] == {"max_new_tokens": 128, "repetition_penalty": 1.0, "no_repeat_ngram_size": 0}
    with pytest.raises(ConfigError, match="unknown generation preset 'wild'"):
        describe_molecule("CCO", model=tiny_model, generation="wild")


def test_describe_protein_name_offline_is_a_clear_error(tiny_model, monkeypatch):
    monkeypatch.setenv("BIOMEDGPT_OFFLINE", "1")
    reset_settings()
    with pytest.raises(StructureNotResolved, match=r"could not resolve 'hemoglobin' to a protein sequence: .*offline"):
        describe_protein("hemoglobin", model=tiny_model)
