"""The assistant evaluation: row reader, scorer, session order, ``eval assistant`` CLI, and the public set's syntax.

Run: ``.venv/bin/python -m pytest -q tests/agent/test_evaluation.py``. The public set's *score* is
never asserted here (the assistant is being rewritten); only that every row parses and every regex
compiles.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from biomedgpt.agent.evaluation import (
    KNOWN_TOOLS,
    Answer,
    AssistantReport,
    EvalDataError,
    EvalRow,
    Expect,
    evaluate_assistant,
    parse_row,
    read_rows,
    run_order,
    score,
    scratch_home,
    select_rows,
)
from biomedgpt.cli import app
from biomedgpt.core.settings import get_settings

EVAL_DIR = Path(__file__).resolve().parents[2] / "agent" / "data" / "eval"
FIXTURES = Path(__file__).resolve().parents[1] / "data"


def _row(**fields) -> dict:
    row = {"id": "r1", "category": "c", "question": "q?", "expect": {}}
    row.update(fields)
    return row


def _write(path: Path, rows: list, raw_lines: list[str] = ()) -> Path:
    lines = [json.dumps(r) for r in rows] + list(raw_lines)
    path.write_text("\n".join(lines) + "\n")
    return path


# ------------------------------------------------------------------------------------------ reader


def test_reader_reads_good_rows(tmp_path):
    path = _write(tmp_path / "rows.jsonl", [
        _row(id="a", expect={"answer_matches": [r"180\.1[56]"], "tools_called": ["molecule_properties"]}, offline=True),
        _row(id="b", session="s1", expect={"tools_not_called": list(KNOWN_TOOLS), "cited_pmid_keywords": ["BRCA1"]}),
    ], raw_lines=["", "   "])
    rows = read_rows(path)
    assert [r.id for r in rows] == ["a", "b"]
    assert rows[0].offline is True and rows[0].session is None
    assert rows[0].expect.answer_matches == (r"180\.1[56]",) and rows[0].expect.tools_called == ("molecule_properties",)
    assert rows[1].session == "s1" and rows[1].offline is False and rows[1].expect.cited_pmid_keywords == ("BRCA1",)
    assert rows[1].where == f"{path}:2"


@pytest.mark.parametrize("line, problem", [
    ('{"id": "x", "category": "c", "question": "q", "expect": {', "not valid JSON"),
    ('["not", "an", "object"]', "expected a JSON object"),
    ('{"id": "x", "category": "c", "expect": {}}', "'question' must be a non-empty string"),
    ('{"id": "x", "category": "c", "question": "q", "expect": {"answer_match": ["a"]}}', "unknown expectation(s) answer_match"),
    ('{"id": "x", "category": "c", "question": "q", "ofline": true}', "unknown key(s) ofline"),
    ('{"id": "x", "category": "c", "question": "q", "offline": "yes"}', "'offline' must be true or false"),
    ('{"id": "x", "category": "c", "question": "q", "expect": {"tools_called": "pubchem_lookup"}}', "must be a list"),
    ('{"id": "x", "category": "c", "question": "q", "expect": {"tools_called": ["pubchem"]}}', "unknown tool 'pubchem'"),
    ('{"id": "x", "category": "c", "question": "q", "expect": {"answer_matches": ["(unclosed"]}}', "bad regex '(unclosed'"),
    ('{"id": "r1", "category": "c", "question": "q"}', "duplicate id 'r1' (first at"),
])
def test_malformed_row_names_file_and_line(tmp_path, line, problem):
    path = _write(tmp_path / "rows.jsonl", [_row()], raw_lines=["", line])
    with pytest.raises(EvalDataError) as caught:
        read_rows(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:3"), message
    assert problem in message
    assert "\n" not in message


def test_missing_or_empty_file_is_an_error(tmp_path):
    with pytest.raises(EvalDataError, match="does not exist"):
        read_rows(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(EvalDataError, match="holds no rows"):
        read_rows(tmp_path / "empty.jsonl")


def test_select_rows_by_category_and_limit():
    rows = [parse_row(_row(id=str(i), category="a" if i % 2 else "b")) for i in range(6)]
    assert [r.id for r in select_rows(rows, "a")] == ["1", "3", "5"]
    assert [r.id for r in select_rows(rows, "a", 2)] == ["1", "3"]
    assert [r.id for r in select_rows(rows, None, 1)] == ["0"]
    with pytest.raises(EvalDataError, match="no rows of category 'zzz'; the file has: a, b"):
        select_rows(rows, "zzz")


# ------------------------------------------------------------------------------------------ scorer

ANSWER = Answer(
    text="The molecular weight of aspirin is 180.16 g/mol [PubChem CID 2244]. See [PMID 111].",
    tool_calls=[{"name": "pubchem_lookup", "args": {"query": "aspirin"}, "ok": True, "error": None},
                {"name": "molecule_properties", "args": {}, "ok": False, "error": "boom"}],
    citations=[{"label": "PubChem CID 2244", "source": "PubChem", "url": "", "title": ""},
               {"label": "PMID 222", "source": "PubMed", "url": "", "title": "t"}],
)
PMID_TEXT = {"111": "BRCA1 mutations in ovarian cancer families", "222": "Germline BRCA1 alterations; treatment"}


def _score(**expect) -> tuple[bool, str]:
    return score(EvalRow("r", "c", "q", Expect(**{k: tuple(v) for k, v in expect.items()})), ANSWER, PMID_TEXT.get)


@pytest.mark.parametrize("expect", [
    {"answer_matches": [r"180\.1[56]", r"\[pubchem cid 2244\]"]},          # case-insensitive
    {"answer_not_matches": [r"\bcaffeine\b", "Traceback"]},
    {"tools_called": ["pubchem_lookup", "molecule_properties"]},           # a failed call was still called
    {"tools_not_called": ["uniprot_lookup", "literature_search"]},
    {"cited_pmid_keywords": ["brca1"]},
    {},
])
def test_each_expectation_can_pass(expect):
    assert _score(**expect) == (True, "")


@pytest.mark.parametrize("expect, reason", [
    ({"answer_matches": [r"194\.19"]}, r"answer lacks /194\.19/"),
    ({"answer_not_matches": [r"\[PubChem CID \d+\]"]}, "answer has /\\[PubChem CID \\d+\\]/ ('[PubChem CID 2244]')"),
    ({"tools_called": ["uniprot_lookup"]}, "uniprot_lookup not called (called: pubchem_lookup, molecule_properties)"),
    ({"tools_not_called": ["molecule_properties"]}, "molecule_properties called"),
    ({"cited_pmid_keywords": ["ovarian"]}, "PMID 222 ('Germline BRCA1 alterations; treatment') mentions none of ovarian"),
    ({"cited_pmid_keywords": ["ATM"]}, "PMID 111"),                     # whole words: "treatment" holds no ATM
])
def test_each_expectation_can_fail(expect, reason):
    passed, why = _score(**expect)
    assert not passed
    assert reason in why


def test_cited_pmids_come_from_labels_and_text_and_must_exist():
    assert ANSWER.cited_pmids() == ["222", "111"]
    row = EvalRow("r", "c", "q", Expect(cited_pmid_keywords=("BRCA1",)))
    passed, why = score(row, Answer("no citations here"), PMID_TEXT.get)
    assert not passed and why == "no PMID cited"
    passed, why = score(row, Answer("see [PMID 999]"), PMID_TEXT.get)
    assert not passed and why == "PMID 999 is not in the literature store"


def test_several_failures_are_all_reported():
    passed, why = _score(answer_matches=["nope"], tools_called=["similar_known"])
    assert not passed and why == "answer lacks /nope/; similar_known not called (called: pubchem_lookup, molecule_properties)"


# ------------------------------------------------------------------------------------------ runs


class FakeResult:
    def __init__(self, answer: str, tools=()):
        self.answer = answer
        self.citations = []
        self.tool_calls = [{"name": t, "args": {}, "ok": True, "error": None} for t in tools]


class FakeAssistant:
    def __init__(self, settings, log):
        self.settings, self.log = settings, log

    def ask(self, question, session=None):
        self.log.append((question, session, self.settings.offline))
        if question == "explode":
            raise RuntimeError("the graph\nfell over")
        return FakeResult(f"answer to {question}", ["molecule_properties"])


def test_session_rows_run_in_file_order_in_one_session():
    rows = [parse_row(_row(id=i, question=i, **({"session": s} if s else {}))) for i, s in
            [("a", "s1"), ("b", None), ("c", "s1"), ("d", "s 2"), ("e", None), ("f", "s 2"), ("g", "s1")]]
    order = run_order(rows, "run1")
    assert [(r.id, s) for r, s in order] == [
        ("a", "eval-run1-s1"), ("c", "eval-run1-s1"), ("g", "eval-run1-s1"), ("b", None),
        ("d", "eval-run1-s-2"), ("f", "eval-run1-s-2"), ("e", None)]

    log: list = []
    report = evaluate_assistant(rows, make_assistant=lambda settings: FakeAssistant(settings, log), pmid_text={}.get)
    assert [q for q, _, _ in log] == ["a", "c", "g", "b", "d", "f", "e"]
    sessions = {q: s for q, s, _ in log}
    assert sessions["a"] == sessions["c"] == sessions["g"] != sessions["d"] == sessions["f"]
    assert sessions["b"] is None and sessions["e"] is None
    assert sessions["a"].startswith(f"eval-{report.run_id}-")
    assert [r.id for r in report.results] == ["a", "b", "c", "d", "e", "f", "g"]  # reported in file order

    again: list = []
    evaluate_assistant(rows[:1], make_assistant=lambda settings: FakeAssistant(settings, again), pmid_text={}.get)
    assert again[0][1] != sessions["a"]  # a fresh session per run


def test_offline_rows_get_offline_settings_and_errors_fail_one_row(monkeypatch):
    monkeypatch.delenv("BIOMEDGPT_OFFLINE", raising=False)
    rows = [parse_row(_row(id="on", question="on", expect={"answer_matches": ["answer"]})),
            parse_row(_row(id="off", question="off", offline=True, expect={"tools_called": ["molecule_properties"]})),
            parse_row(_row(id="boom", question="explode")),
            parse_row(_row(id="after", question="after", expect={"answer_matches": ["nope"]}))]
    log: list = []
    seen: list = []
    report = evaluate_assistant(rows, make_assistant=lambda settings: FakeAssistant(settings, log), pmid_text={}.get,
                                on_result=seen.append, progress=lambda done, total, result: seen.append((done, total)))
    assert [(q, offline) for q, _, offline in log] == [("on", False), ("off", True), ("explode", False), ("after", False)]
    assert isinstance(report, AssistantReport)
    assert report.to_dict() == {
        "passed": 2, "total": 4, "by_category": {"c": [2, 4]},
        "failures": [{"id": "boom", "reason": "error: RuntimeError: the graph fell over"},
                     {"id": "after", "reason": "answer lacks /nope/"}]}
    assert seen[1] == (1, 4) and seen[-1] == (4, 4)
    boom = report.results[2]
    assert boom.answer == "" and boom.tools_called == []


def test_scratch_home_shares_store_and_weights_but_not_cache_or_sessions(tmp_path):
    real = tmp_path / "real"
    (real / "chroma").mkdir(parents=True)
    (real / "models" / "smollm2").mkdir(parents=True)
    for name in ("http_cache.sqlite", "http_cache.sqlite-wal", "sessions.sqlite", "ratelimit.sqlite",
                 "ratelimit.sqlite.lock", "notes.txt"):
        (real / name).write_text("x")
    base = get_settings().model_copy(update={"home": real})
    moved = scratch_home(base, tmp_path / "scratch")
    assert moved.home == (tmp_path / "scratch").resolve() and base.home == real
    # the rate limiter's lock file must not be a link (its lock refuses one: ELOOP), and its state is per run
    assert sorted(p.name for p in moved.home.iterdir()) == ["chroma", "models", "molecule_db"]
    assert (moved.home / "models" / "smollm2").is_dir() and (moved.home / "chroma").resolve() == real / "chroma"


# ------------------------------------------------------------------------------------------ CLI

ROWS_3 = [
    {"id": "mw", "category": "molecule_properties", "question": "What is the molecular weight of CCO?", "offline": True,
     "expect": {"answer_matches": [r"46\.0[67]"], "tools_called": ["molecule_properties"]}},
    {"id": "formula", "category": "molecule_properties", "question": "molecular formula of c1ccccc1O", "offline": True,
     "expect": {"answer_matches": ["C6H6O"]}},
    {"id": "never", "category": "other", "question": "TPSA of CCO?", "offline": True,
     "expect": {"answer_matches": ["this text is not in any answer"], "tools_not_called": ["uniprot_lookup"]}},
]


def test_cli_json_shape(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOMEDGPT_OFFLINE", "1")
    data = _write(tmp_path / "three.jsonl", ROWS_3)
    out = tmp_path / "rows.jsonl"
    result = CliRunner().invoke(app, ["eval", "assistant", "--data", str(data), "--json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == {"passed", "total", "by_category", "failures"}
    assert report["total"] == 3 and isinstance(report["passed"], int) and 0 <= report["passed"] <= 2
    assert set(report["by_category"]) == {"molecule_properties", "other"}
    assert report["by_category"]["other"] == [0, 1] and report["by_category"]["molecule_properties"][1] == 2
    assert {"id": "never", "reason": "answer lacks /this text is not in any answer/"} in report["failures"]
    assert all(set(f) == {"id", "reason"} for f in report["failures"])
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["id"] for line in lines] == ["mw", "formula", "never"]
    assert {"id", "passed", "reason", "answer", "tools_called"} <= set(lines[0])


def test_cli_table_lists_categories_and_failures(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOMEDGPT_OFFLINE", "1")
    data = _write(tmp_path / "one.jsonl", ROWS_3[2:])
    result = CliRunner().invoke(app, ["eval", "assistant", "--data", str(data)])
    assert result.exit_code == 0, result.output
    assert "other" in result.stdout and "0/1 passed" in result.stdout
    assert "never | TPSA of CCO? | answer lacks /this text is not in any answer/" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--category", "nope"], "no rows of category 'nope'"),
    (["--fixtures", "{tmp}"], "lacks pubchem/, uniprot/, eutils/"),
])
def test_cli_usage_errors_exit_2(tmp_path, args, message):
    data = _write(tmp_path / "rows.jsonl", ROWS_3)
    args = [a.format(tmp=tmp_path) for a in args]
    result = CliRunner().invoke(app, ["eval", "assistant", "--data", str(data), *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_cli_bad_regex_exits_2_before_running_anything(tmp_path, monkeypatch):
    import biomedgpt.agent.evaluation as evaluation

    monkeypatch.setattr(evaluation, "evaluate_assistant", lambda *a, **k: pytest.fail("ran despite a bad row"))
    data = _write(tmp_path / "rows.jsonl", ROWS_3, raw_lines=[json.dumps(
        {"id": "bad", "category": "c", "question": "q", "expect": {"answer_not_matches": ["[unclosed"]}})])
    result = CliRunner().invoke(app, ["eval", "assistant", "--data", str(data)])
    assert result.exit_code == 2, result.output
    assert f"{data}:4 (row 'bad'): bad regex '[unclosed'" in result.stderr
    result = CliRunner().invoke(app, ["eval", "assistant", "--data", str(tmp_path / "missing.jsonl")])
    assert result.exit_code == 2 and "does not exist" in result.stderr


def test_cli_fixtures_serve_online_rows(tmp_path, monkeypatch):
    import biomedgpt.fixtureserver as fixtureserver

    monkeypatch.delenv("BIOMEDGPT_OFFLINE", raising=False)
    servers = []
    real = fixtureserver.fixture_server

    def recording(data=None):
        context = real(data)

        class Wrapper:
            def __enter__(self):
                servers.append(context.__enter__())
                return servers[-1]

            def __exit__(self, *exc):
                return context.__exit__(*exc)

        return Wrapper()

    monkeypatch.setattr(fixtureserver, "fixture_server", recording)
    data = _write(tmp_path / "online.jsonl", [
        {"id": "aspirin-mw", "category": "pubchem_fields", "question": "What is the molecular weight of aspirin?",
         "expect": {"answer_matches": [r"180\.16"]}},
        {"id": "app-gene", "category": "uniprot_fields", "question": "Which gene encodes UniProt P05067?",
         "expect": {"answer_matches": [r"\bAPP\b"]}},
    ])
    result = CliRunner().invoke(app, ["eval", "assistant", "--data", str(data), "--fixtures", str(FIXTURES), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["total"] == 2 and set(report["by_category"]) == {"pubchem_fields", "uniprot_fields"}
    [server] = servers
    assert server.count("/rest/pug/compound/name/aspirin") >= 1
    assert server.count("/uniprotkb/P05067") >= 1


# ------------------------------------------------------------------------------------------ the shipped sets


def test_public_set_parses_and_covers_every_category():
    rows = read_rows(EVAL_DIR / "public.jsonl")  # every row parses, every regex compiles, ids unique
    assert len(rows) >= 170
    counts = Counter(r.category for r in rows)
    expected = {"molecule_properties", "pubchem_fields", "uniprot_fields", "follow_up", "comparison", "literature",
                "off_domain", "bad_input", "similarity", "protein_sequence"}
    assert set(counts) == expected
    assert all(n >= 12 for n in counts.values()), counts
    for row in rows:
        if row.category == "off_domain":
            assert set(row.expect.tools_not_called) == set(KNOWN_TOOLS), row.id
        if row.category in ("molecule_properties", "literature", "protein_sequence"):
            assert row.offline, row.id
        if row.category in ("pubchem_fields", "uniprot_fields"):
            assert not row.offline, row.id
    sessions = Counter(r.session for r in rows if r.session)
    assert sessions and all(n >= 2 for n in sessions.values())


def test_smoke_set_is_a_slice_of_the_public_set():
    public = {json.loads(line)["id"]: json.loads(line) for line in (EVAL_DIR / "public.jsonl").read_text().splitlines()}
    smoke_rows = read_rows(EVAL_DIR / "smoke.jsonl")
    assert 15 <= len(smoke_rows) <= 30
    for line in (EVAL_DIR / "smoke.jsonl").read_text().splitlines():
        row = json.loads(line)
        assert public[row["id"]] == row
    assert {r.category for r in smoke_rows} == {r.category for r in read_rows(EVAL_DIR / "public.jsonl")}
    for session in {r.session for r in smoke_rows if r.session}:  # a follow-up keeps the turns before it
        turns = [r.id for r in smoke_rows if r.session == session]
        assert turns == [i for i, r in public.items() if r.get("session") == session][: len(turns)], session
