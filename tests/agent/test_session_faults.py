"""Sessions under faults (issue 13): concurrent writers, cancelled and killed turns: ``pytest -q tests/agent/test_session_faults.py``.

The rule for a turn that ends without an answer (killed, cancelled with Ctrl-C, failed): it leaves
nothing behind. History shows only answered turns, and the next question continues from the last
answered one, so a resumed script holds each question once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage
from langchain_core.tools import tool

from biomedgpt.agent.assistant import Assistant
from biomedgpt.agent.script import run_script
from biomedgpt.tools.records import MoleculeProperties
from tests.agent.helpers import call, fake_llm, rdkit_properties

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _model_picks_tools(monkeypatch):
    """The scripted chat models here call tools themselves: ``model`` mode (agent/modes.py)."""
    monkeypatch.setenv("BIOMEDGPT_TOOL_CHOICE", "model")


@tool(response_format="content_and_artifact")
def slow_properties(smiles: str) -> tuple[str, dict]:
    """RDKit properties, slowly (so two turns overlap)."""
    from biomedgpt.tools.properties import molecule_properties

    time.sleep(0.6)
    props = molecule_properties(smiles)
    return f"{props.formula} [RDKit]", props.model_dump()


@tool(response_format="content_and_artifact")
def interrupted(smiles: str) -> tuple[str, dict]:
    """A tool the user interrupts with Ctrl-C."""
    raise KeyboardInterrupt


slow_properties.metadata = {"record": MoleculeProperties}
interrupted.metadata = {"record": MoleculeProperties}


def _script(smiles: str, answer: str) -> list[AIMessage]:
    return [AIMessage(content="", tool_calls=[call("slow_properties", "c1", smiles=smiles)]),
            AIMessage(content=answer)]


def test_two_writers_to_one_session_lose_no_turn():
    session = "concurrent-writers"
    answers = {}

    def ask(smiles: str) -> None:
        # Separate Assistants: separate connections, as two processes would have.
        assistant = Assistant(llm=fake_llm(_script(smiles, f"{smiles} answered [RDKit].")), tools=[slow_properties])
        answers[smiles] = assistant.ask(f"Properties of {smiles}?", session=session).answer
        assistant.close()

    threads = [threading.Thread(target=ask, args=(smiles,)) for smiles in ("CCO", "CCN")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    history = Assistant().history(session)
    assert sorted(t.question for t in history) == ["Properties of CCN?", "Properties of CCO?"]
    assert all(t.answer for t in history)
    assert set(answers) == {"CCO", "CCN"}


def test_two_processes_writing_one_session_lose_no_turn():
    session = "concurrent-processes"
    child = textwrap.dedent(f"""
        import sys, time
        from tests.agent.test_session_faults import _script, slow_properties
        from tests.agent.helpers import fake_llm
        from biomedgpt.agent.assistant import Assistant
        start, smiles = float(sys.argv[1]), sys.argv[2]
        assistant = Assistant(llm=fake_llm(_script(smiles, smiles + " answered.")), tools=[slow_properties])
        time.sleep(max(0.0, start - time.time()))
        assistant.ask("Properties of " + smiles + "?", session={session!r})
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    start = time.time() + 6.0
    procs = [subprocess.Popen([sys.executable, "-c", child, str(start), smiles], env=env, stderr=subprocess.PIPE,
                              text=True) for smiles in ("CCO", "CCC")]
    errors = [proc.communicate(timeout=180)[1] for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), [e[-2000:] for e in errors]

    history = Assistant().history(session)
    assert sorted(t.question for t in history) == ["Properties of CCC?", "Properties of CCO?"]


def test_a_cancelled_turn_leaves_no_dangling_question():
    session = "cancelled-turn"
    first = Assistant(llm=fake_llm(_script("CCO", "Ethanol [RDKit].")), tools=[slow_properties])
    first.ask("Properties of CCO?", session=session)

    cancelled = Assistant(llm=fake_llm([AIMessage(content="", tool_calls=[call("interrupted", "c1", smiles="CCN")])]),
                          tools=[interrupted])
    with pytest.raises(KeyboardInterrupt):
        cancelled.ask("Properties of CCN?", session=session)
    assert [t.question for t in Assistant().history(session)] == ["Properties of CCO?"]  # nothing half-done shown

    again = Assistant(llm=fake_llm(_script("CCN", "Ethylamine [RDKit].")), tools=[slow_properties])
    again.ask("Properties of CCN?", session=session)

    history = Assistant().history(session)
    assert [t.question for t in history] == ["Properties of CCO?", "Properties of CCN?"]
    assert [t.answer for t in history] == ["Ethanol [RDKit].", "Ethylamine [RDKit]."]
    messages = Assistant().store().messages(session)
    assert sum(1 for m in messages if getattr(m, "content", None) == "Properties of CCN?") == 1


KILLED_RUN = textwrap.dedent("""
    import os, sys
    from langchain_core.messages import AIMessage
    from langchain_core.tools import tool
    from biomedgpt.agent.assistant import Assistant
    from biomedgpt.tools.records import MoleculeProperties
    from tests.agent.helpers import call, fake_llm
    from tests.agent.test_session_faults import _script, slow_properties

    @tool(response_format="content_and_artifact")
    def killed(smiles: str) -> tuple[str, dict]:
        \"\"\"The process is killed while this tool runs.\"\"\"
        os._exit(9)

    killed.metadata = {"record": MoleculeProperties}
    script = {"session": sys.argv[2], "steps": [{"ask": "Properties of CCO?"}, {"ask": "Properties of CCN?"}]}
    llm = fake_llm(_script("CCO", "Ethanol.") + [AIMessage(content="", tool_calls=[call("killed", "k1", smiles="CCN")])])
    Assistant(llm=llm, tools=[slow_properties, killed]).run(script, out=sys.argv[1])
""")


def test_a_killed_scripted_run_resumes_without_the_question_twice(tmp_path):
    session = "killed-script"
    out = tmp_path / "report.md"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    child = subprocess.run([sys.executable, "-c", KILLED_RUN, str(out), session], env=env, capture_output=True,
                           text=True, timeout=180)
    assert child.returncode == 9, child.stderr[-2000:]

    script = {"session": session, "steps": [{"ask": "Properties of CCO?"}, {"ask": "Properties of CCN?"}]}
    assistant = Assistant(llm=fake_llm(_script("CCN", "Ethylamine.")), tools=[slow_properties, rdkit_properties])
    report = run_script(assistant, script, out=out, resume=True)

    assert [s.resumed for s in report.steps] == [True, False] and report.ok
    history = Assistant().history(session)
    assert [t.question for t in history] == ["Properties of CCO?", "Properties of CCN?"]
    assert all(t.answer for t in history)
    questions = [m.content for m in Assistant().store().messages(session) if m.type == "human"]
    assert questions == ["Properties of CCO?", "Properties of CCN?"]
