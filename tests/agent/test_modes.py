"""Who picks the tools (agent/modes.py), with scripted chat models.

``model`` mode: the chat model calls tools; the scripts cover a call to an unknown tool, malformed arguments, a
reply with no tool call (flagged ungrounded), a truncated reply and a server that disappears. ``router`` mode: the
router runs the tools; the chat model writes only the opening sentence (checked), and the composed answer's cited
facts follow it verbatim.
Everything runs offline: the tools used are RDKit's (local).
"""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool

from biomedgpt.agent.assistant import Assistant
from biomedgpt.agent.answer import OUT_OF_DOMAIN
from biomedgpt.agent.backends import BackendError
from biomedgpt.agent.modes import LEAD_EXAMPLES, NO_RECORD_PROMPT, first_sentences, unasked_names
from biomedgpt.tools.records import MoleculeProperties
from tests.agent.helpers import call, fake_llm

ETHANOL_MW = "46.07"  # RDKit's average mass of CCO, 46.069


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("BIOMEDGPT_OFFLINE", "1")  # no PubChem: every look-up here is local


def _model(*messages) -> Assistant:
    return Assistant(llm=fake_llm(list(messages)), tool_choice="model")


# ----------------------------------------------------------------------------- model mode


def test_model_mode_offers_the_relevant_tools_and_requires_a_call_first():
    llm = fake_llm([
        AIMessage(content="", tool_calls=[call("molecule_properties", "c1", smiles="CCO")]),
        AIMessage(content=f"CCO has an average molecular weight of {ETHANOL_MW} g/mol [RDKit]."),
    ])
    result = Assistant(llm=llm, tool_choice="model").ask("What is the molecular weight of CCO?")
    assert [(c["name"], c["ok"]) for c in result.tool_calls] == [("molecule_properties", True)]
    assert "molecule_properties" in llm.bound and "pubchem_lookup" in llm.bound
    assert not {"uniprot_lookup", "literature_search", "pubmed_fetch", "describe_protein"} & set(llm.bound)
    assert llm.tool_choices == ["required", None]  # a named molecule: the first step must call a tool
    assert (result.answer_source, result.ungrounded, result.truncated) == ("llm", [], False)
    assert result.answer.startswith("CCO has an average molecular weight of 46.07 g/mol [RDKit].")


def test_a_call_to_an_unknown_tool_is_reported_and_the_model_goes_on():
    llm = fake_llm([
        AIMessage(content="", tool_calls=[call("rm_rf", "c1", path="/")]),
        AIMessage(content="", tool_calls=[call("molecule_properties", "c2", smiles="CCO")]),
        AIMessage(content=f"It weighs {ETHANOL_MW} g/mol [RDKit]."),
    ])
    result = Assistant(llm=llm, tool_choice="model").ask("What is the molecular weight of CCO?")
    unknown, ok = result.tool_calls
    assert unknown["name"] == "rm_rf" and unknown["ok"] is False and "not a valid tool" in unknown["error"]
    assert ok["ok"] is True
    second = llm.seen[1]  # the model saw the error before its second step
    assert isinstance(second[-1], ToolMessage) and "rm_rf is not a valid tool" in second[-1].content
    assert "rm_rf" in result.answer and "Could not look up" in result.answer  # reported in the answer too
    assert result.answer_source == "llm" and result.ungrounded == []


def test_malformed_arguments_are_reported_not_run():
    bad = {"name": "molecule_properties", "args": '{"smiles": CCO}', "id": "bad1", "error": "not JSON",
           "type": "invalid_tool_call"}
    llm = fake_llm([
        AIMessage(content="", invalid_tool_calls=[bad]),
        AIMessage(content="", tool_calls=[call("molecule_properties", "c2", smiles="CCO")]),
        AIMessage(content=f"It weighs {ETHANOL_MW} g/mol [RDKit]."),
    ])
    result = Assistant(llm=llm, tool_choice="model").ask("What is the molecular weight of CCO?")
    malformed, ok = result.tool_calls
    assert malformed == {"name": "molecule_properties", "args": '{"smiles": CCO}', "ok": False,
                         "error": malformed["error"]}
    assert "malformed call to molecule_properties" in malformed["error"] and ok["ok"] is True
    # the history sent back holds the call with empty (valid) arguments and the error answering it
    sent = llm.seen[1]
    assert sent[-2].tool_calls[0]["args"] == {} and sent[-1].status == "error"
    assert len(result.artifacts["properties"]) == 1  # only the good call ran


def test_a_reply_without_a_tool_call_is_flagged_ungrounded():
    llm = fake_llm([AIMessage(content="Aspirin's logP is 1.6180339887. It is an NSAID.")])
    result = Assistant(llm=llm, tool_choice="model").ask("What is the logP of CC(=O)Oc1ccccc1C(=O)O?")
    assert result.tool_calls == [] and llm.tool_choices == ["required"]
    assert result.answer_source == "llm"
    assert result.ungrounded == ["Aspirin's logP is 1.6180339887.", "It is an NSAID."]
    first = result.answer.splitlines()[0]
    assert first.startswith("**Unchecked:** 2 claims") and "1.6180339887" in first
    assert result.citations == []


def test_a_truncated_reply_is_reported():
    llm = fake_llm([
        AIMessage(content="", tool_calls=[call("molecule_properties", "c1", smiles="CCO")]),
        AIMessage(content=f"CCO weighs {ETHANOL_MW} g/mol [RDKit] and its", response_metadata={"finish_reason": "length"}),
    ])
    result = Assistant(llm=llm, tool_choice="model").ask("What is the molecular weight of CCO?")
    assert result.truncated is True and result.answer_source == "llm"
    assert result.answer.rstrip().endswith("BIOMEDGPT_LLM_MAX_TOKENS.)_")
    assert "512-token limit" in result.answer


def test_a_tool_call_cut_off_by_the_limit_is_malformed():
    cut = AIMessage(content='<tool_call>{"name": "molecule_properties", "arguments": {"smi',
                    response_metadata={"finish_reason": "length"})
    llm = fake_llm([cut, AIMessage(content="I could not finish the look-up.")])
    result = Assistant(llm=llm, tool_choice="model").ask("What is the molecular weight of CCO?")
    [bad] = result.tool_calls
    assert bad["name"] == "molecule_properties" and bad["ok"] is False and "not valid JSON" in bad["error"]
    assert result.truncated is True


def test_off_domain_questions_get_no_tool_in_model_mode():
    llm = fake_llm([AIMessage(content="", tool_calls=[call("pubchem_lookup", "c1", query="France")]),
                    AIMessage(content="unused")])
    result = Assistant(llm=llm, tool_choice="model").ask("What is the capital of France?")
    assert llm.tool_choices == []  # nothing was bound
    assert [(c["name"], c["ok"]) for c in result.tool_calls] == [("pubchem_lookup", False)]
    assert "not run" in result.tool_calls[0]["error"] and result.artifacts["compounds"] == []
    assert result.answer_source == "composed" and "outside what I can help with" in result.answer
    assert "wrote no answer" in result.answer  # said, not hidden


def test_a_server_that_disappears_is_one_clear_line(monkeypatch):
    """openai: back end; the server answers the first step, then goes away while the tool runs."""
    from pytest_httpserver import HTTPServer

    httpserver = HTTPServer()  # its own: the shared fixture server must outlive this test
    httpserver.start()

    @tool(response_format="content_and_artifact")
    def molecule_properties(smiles: str) -> tuple[str, dict]:
        """RDKit properties; the chat server is stopped meanwhile."""
        from biomedgpt.tools.properties import molecule_properties as compute

        httpserver.stop()
        props = compute(smiles)
        return props.chat_text(), props.model_dump()

    molecule_properties.metadata = {"record": MoleculeProperties}
    call_json = {"id": "call_1", "type": "function",
                 "function": {"name": "molecule_properties", "arguments": json.dumps({"smiles": "CCO"})}}
    chunk = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m",
             "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [{"index": 0, **call_json}]},
                          "finish_reason": "tool_calls"}]}
    httpserver.expect_oneshot_request("/v1/chat/completions").respond_with_data(
        f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n", content_type="text/event-stream")
    monkeypatch.setenv("OPENAI_BASE_URL", httpserver.url_for("/v1"))
    monkeypatch.setenv("BIOMEDGPT_LLM", "openai:m")
    try:
        with pytest.raises(BackendError) as caught:
            Assistant(tools=[molecule_properties], tool_choice="model").ask("What is the molecular weight of CCO?")
    finally:
        if httpserver.is_running():
            httpserver.stop()
    message = str(caught.value)
    assert "\n" not in message and message.startswith("chat back end 'openai:m' failed: cannot connect")
    assert "is the server running?" in message


# ----------------------------------------------------------------------------- router mode

LEAD = "Here is what the records say about the molecular weight of CCO."


def _composed(question: str) -> str:
    return Assistant().ask(question).answer  # no chat model: the router's composed answer


def test_router_mode_the_model_writes_the_lead_and_the_facts_follow_verbatim():
    composed = _composed("What is the molecular weight of CCO?")
    llm = fake_llm([AIMessage(content=LEAD)])
    events = list(Assistant(llm=llm, tool_choice="router").stream("What is the molecular weight of CCO?"))
    result = events[-1].data
    assert [(c["name"], c["ok"]) for c in result.tool_calls] == [("molecule_properties", True)]  # the router's
    assert llm.tool_choices == []  # never bound: the model only writes
    assert (result.answer_source, result.ungrounded, result.truncated) == ("llm", [], False)
    assert f"{ETHANOL_MW} g/mol [RDKit]" in composed
    assert result.answer == f"{LEAD}\n\n{composed}"  # the facts: the composed answer's, verbatim
    assert [c["label"] for c in result.citations] == ["RDKit"]
    [prompt] = llm.seen
    assert isinstance(prompt[0], SystemMessage) and isinstance(prompt[-1], HumanMessage)
    assert prompt[-1].content == "Question: What is the molecular weight of CCO?"
    assert [m.content for m in prompt[2:-1:2]] == [lead for _, lead in LEAD_EXAMPLES]
    sent = " ".join(str(m.content) for m in prompt)
    assert "RDKit" not in sent and ETHANOL_MW not in sent  # the model sees no record: it cannot restate one
    assert "".join(e.data for e in events if e.kind == "token") == LEAD  # the lead streamed as written


def test_router_mode_long_smiles_are_not_given_to_the_model_to_copy():
    llm = fake_llm([AIMessage(content="Here is what the records say about the molecular weight of the given "
                                      "molecule.")])
    result = Assistant(llm=llm).ask("What is the molecular weight of CC(=O)Oc1ccccc1C(=O)O?")
    assert llm.seen[0][-1].content == "Question: What is the molecular weight of the given molecule?"
    assert result.ungrounded == [] and "`CC(=O)Oc1ccccc1C(=O)O` is 180.16 g/mol [RDKit]" in result.answer


def test_router_mode_checks_the_numbers_the_model_writes():
    llm = fake_llm([AIMessage(content="CCO weighs 50.1 g/mol [RDKit]. It is a solvent [PubChem CID 702].")])
    result = Assistant(llm=llm).ask("What is the molecular weight of CCO?")  # router is the default
    assert result.answer_source == "llm"
    assert result.ungrounded == ["CCO weighs 50.1 g/mol [RDKit].", "It is a solvent [PubChem CID 702]."]
    assert result.answer.startswith("**Unchecked:** 2 claims")
    assert "[unverified: PubChem CID 702]" in result.answer
    assert result.answer.endswith(_composed("What is the molecular weight of CCO?"))  # the facts still follow


def test_router_mode_keeps_the_first_sentences_of_a_looping_lead():
    loop = " ".join([LEAD] * 6) + " Here is"
    llm = fake_llm([AIMessage(content=loop, response_metadata={"finish_reason": "length"})])
    result = Assistant(llm=llm).ask("What is the molecular weight of CCO?")
    assert result.answer.split("\n\n")[0] == LEAD  # each sentence once, the cut one left out
    assert result.truncated is False and "BIOMEDGPT_LLM_MAX_TOKENS" not in result.answer  # nothing shown was cut


def test_router_mode_a_lead_cut_mid_sentence_is_reported():
    llm = fake_llm([AIMessage(content="Here is what the records say about the", response_metadata={
        "finish_reason": "length"})])
    result = Assistant(llm=llm).ask("What is the molecular weight of CCO?")
    assert result.truncated is True and result.answer_source == "llm"
    assert result.answer.startswith("Here is what the records say about the\n\n")
    assert result.answer.rstrip().endswith("cut at its 48-token limit in router mode.)_")


def test_router_mode_a_lead_naming_what_nobody_asked_is_flagged():
    """The model writes the lead from the question alone: a name neither the question nor a record gives is its
    own claim (here: that CCO is aspirin), quoted in the opening line, even in a sentence about the records."""
    lead = "Here is what the records say about the molecular weight of aspirin."
    result = Assistant(llm=fake_llm([AIMessage(content=lead)])).ask("What is the molecular weight of CCO?")
    assert result.answer_source == "llm" and result.ungrounded == [lead]
    assert result.answer.startswith("**Unchecked:** 1 claim") and "aspirin" in result.answer.splitlines()[0]
    assert unasked_names("Here is what the records say about the protein AMPK.", "What does MKTAYIAKQRQ do?") != []
    assert unasked_names("I have no records about the capital of France.", "What is the capital of France?") == []


def test_a_cut_lead_that_loops_is_shown_once():
    looping = "Here is what the records say about the protein that is known as the protein that is known as the"
    assert first_sentences(looping) == ("Here is what the records say about the protein that is known as …", True)
    assert first_sentences("Here is what the records say about the") == ("Here is what the records say about the",
                                                                          False)


def test_router_mode_off_domain_calls_no_tool_and_the_model_writes_the_lead():
    llm = fake_llm([AIMessage(content="I have no records about the capital of France.")])
    result = Assistant(llm=llm).ask("What is the capital of France?")
    assert result.tool_calls == [] and result.answer_source == "llm" and result.ungrounded == []
    assert llm.seen[0][0].content == NO_RECORD_PROMPT
    assert result.answer == f"I have no records about the capital of France.\n\n{OUT_OF_DOMAIN}"


def test_router_mode_off_domain_facts_from_memory_are_flagged():
    llm = fake_llm([AIMessage(content="The capital of France is Paris.")])
    result = Assistant(llm=llm).ask("What is the capital of France?")
    assert result.tool_calls == [] and result.answer_source == "llm"
    assert result.ungrounded == ["The capital of France is Paris."]  # no record says so: unchecked, not hidden
    assert result.answer.startswith("**Unchecked:** 1 claim")


@pytest.mark.parametrize("reply", ["  ", "Here is what the records say about the logP of caffeine."])
def test_router_mode_a_model_that_writes_nothing_gives_the_composed_answer_and_says_so(reply):
    """Nothing, or a worked example of the prompt repeated for another question (it would name the wrong
    molecule): the answer is the composed one, said in its first line, not passed off as the model's."""
    llm = fake_llm([AIMessage(content=reply)])
    result = Assistant(llm=llm).ask("What is the molecular weight of CCO?")
    assert result.answer_source == "composed" and "wrote no answer" in result.answer.splitlines()[0]
    assert "caffeine" not in result.answer


def test_router_mode_follow_up_may_cite_the_records_of_an_earlier_turn(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOMEDGPT_HOME", str(tmp_path))
    llm = fake_llm([AIMessage(content=f"It weighs {ETHANOL_MW} g/mol [RDKit]."),
                    AIMessage(content="Hello! Earlier: 46.1 g/mol [RDKit]; TPSA 99 [RDKit].")])
    assistant = Assistant(llm=llm)
    assistant.ask("What is the molecular weight of CCO?", session="follow")
    second = assistant.ask("Hello", session="follow")  # no tool: the session's records back the claims
    assert second.tool_calls == []
    assert second.ungrounded == ["Earlier: 46.1 g/mol [RDKit]; TPSA 99 [RDKit]."]  # 99 is no value of [RDKit]


def test_no_chat_model_means_composed():
    result = Assistant().ask("What is the molecular weight of CCO?")
    assert (result.answer_source, result.ungrounded, result.truncated) == ("composed", [], False)
