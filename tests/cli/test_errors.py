"""Usage, config and input errors at the front door (issue 13): ``pytest -q tests/cli/test_errors.py``.

Usage errors exit 2 with typer's own message; config errors name the variable or the file and the
field; long inputs are cut in messages; inputs are checked before a model loads; binary files are not
ingested; a bad session name stops ``chat`` at its start.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from biomedgpt.cli import app
from biomedgpt.core.settings import reset_settings

runner = CliRunner()


# -- usage errors: exit 2, typer's message ---------------------------------------------------------------


@pytest.mark.parametrize("args, expected", [
    (["ask", "--nosuch", "x"], "No such option: --nosuch"),
    (["search", "x", "--k", "abc"], "Invalid value for '--k'"),
    (["train", "lm", "--config", "tiny", "--bad"], "No such option: --bad"),
    (["lookup", "compound"], "Missing argument"),
], ids=["unknown option", "bad value", "nested command", "missing argument"])
def test_usage_errors_exit_2_with_typers_message(args, expected):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert "unexpected error" not in result.output and "--debug" not in result.output


# -- config errors name the variable or the file, and the field -------------------------------------------


def test_a_bad_environment_variable_is_named(monkeypatch):
    monkeypatch.setenv("BIOMEDGPT_HTTP__READ_TIMEOUT", "abc")
    monkeypatch.setenv("BIOMEDGPT_OFFLINE", "1")
    reset_settings()
    result = runner.invoke(app, ["lookup", "compound", "aspirin"])
    assert result.exit_code == 1
    line = result.output.strip()
    assert "BIOMEDGPT_HTTP__READ_TIMEOUT" in line and "read_timeout" in line and "'abc'" in line
    assert "unexpected error" not in line and len(line.splitlines()) == 1


def test_a_toml_syntax_error_names_the_file(tmp_path, monkeypatch):
    config = tmp_path / "config.toml"
    config.write_text("[http\nread_timeout = 2\n")
    monkeypatch.setenv("BIOMEDGPT_CONFIG", str(config))
    reset_settings()
    result = runner.invoke(app, ["lookup", "compound", "aspirin"])
    assert result.exit_code == 1
    assert str(config) in result.output and "TOML" in result.output and "line 1" in result.output
    assert "unexpected error" not in result.output


def test_a_bad_value_in_the_toml_file_names_the_file_and_field(tmp_path, monkeypatch):
    config = tmp_path / "config.toml"
    config.write_text('[http]\nmax_retries = "many"\n')
    monkeypatch.setenv("BIOMEDGPT_CONFIG", str(config))
    reset_settings()
    result = runner.invoke(app, ["lookup", "compound", "aspirin"])
    assert result.exit_code == 1
    assert str(config) in result.output and "[http] max_retries" in result.output and "'many'" in result.output
    assert "unexpected error" not in result.output


# -- long inputs are cut in messages ---------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ["lookup", "compound", "C(" * 5000],
    ["lookup", "protein", "P" * 10_000],
    ["ask", "x" * 10_000, "--json"],
    ["ask", "hi", "--session", "s" * 10_000],
], ids=["SMILES", "accession", "question", "session name"])
def test_long_inputs_are_not_echoed_whole(args, monkeypatch):
    monkeypatch.setenv("BIOMEDGPT_OFFLINE", "1")
    reset_settings()
    result = runner.invoke(app, args)
    assert result.exit_code in (1, 2)
    assert len(result.output) < 600, result.output[:300]


# -- inputs are checked before any model loads -----------------------------------------------------------


@pytest.mark.parametrize("args, expected", [
    (["--smiles", "C1CC"], "SMILES 'C1CC'"),
    (["--sequence", "MKT1AY"], "'1' at position 4"),
], ids=["smiles", "sequence"])
def test_generate_checks_inputs_before_loading_the_model(args, expected, monkeypatch):
    import biomedgpt.model as model

    def no_model(*_, **__):
        raise AssertionError("the model was loaded before the inputs were checked")

    monkeypatch.setattr(model, "load_model", no_model)
    result = runner.invoke(app, ["generate", "What is it?", *args])
    assert result.exit_code == 1, result.output
    assert expected in result.output and "AssertionError" not in result.output


def test_a_long_question_is_refused_before_the_graph_runs(monkeypatch):
    from biomedgpt.agent.assistant import Assistant
    from biomedgpt.core.errors import InputError

    monkeypatch.setenv("BIOMEDGPT_MAX_QUESTION_CHARS", "100")
    reset_settings()
    assistant = Assistant()
    monkeypatch.setattr(assistant, "graph", lambda *a, **k: (_ for _ in ()).throw(AssertionError("graph built")))
    with pytest.raises(InputError) as caught:
        assistant.ask("why " * 100)
    assert "100" in str(caught.value) and len(str(caught.value)) < 300


# -- binary files are not ingested -------------------------------------------------------------------------


def test_a_binary_file_is_skipped_by_content_and_counted(tmp_path):
    from biomedgpt.tools.documents import IngestReport, iter_documents

    elf = tmp_path / "notes.md"
    elf.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 40)
    report = IngestReport()

    assert list(iter_documents(elf, report)) == []

    assert report.skipped_files == 1 and report.records == 0
    assert any("binary" in problem and "notes.md" in problem for problem in report.problems)


def test_ingest_cli_reports_the_binary_file(tmp_path):
    elf = tmp_path / "program.txt"
    elf.write_bytes(b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 4000)
    result = runner.invoke(app, ["ingest", str(elf)])
    assert result.exit_code == 0, result.output
    assert "1 binary file(s) skipped" in result.output and "0 new chunk(s)" in result.output


# -- a bad session name stops chat at its start ------------------------------------------------------------


def test_chat_with_a_bad_session_name_fails_at_start():
    result = runner.invoke(app, ["chat", "--session", "bad name!"], input="Describe aspirin\n/quit\n")
    assert result.exit_code == 2
    assert "session name 'bad name!' is not valid" in result.output
    assert "you>" not in result.output  # no prompt, no question asked
