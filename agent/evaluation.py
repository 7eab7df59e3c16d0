"""Evaluate the assistant end to end: ``evaluate_assistant(read_rows("agent/data/eval/public.jsonl"))``.

Why: the assistant's question understanding and answer composition change often; a fixed set of
questions, written independently of the implementation and scored only on what a correct answer must
(and must not) contain, shows whether a change helps users. The command line is ``biomedgpt eval
assistant --data FILE [--fixtures DIR]`` (``biomedgpt/commands/eval.py``).

A row (one JSON object per line)::

    {"id": "mw-aspirin", "category": "molecule_properties", "question": "MW of CC(=O)Oc1ccccc1C(=O)O?",
     "session": "s1",            # optional: rows sharing a session run, in file order, in one session
     "offline": true,            # optional: run with Settings(offline=True) (no network, cache only)
     "expect": {"answer_matches": ["180\\.1[56]"],          # Python regexes, case-insensitive, re.search
                "answer_not_matches": ["Traceback"],
                "tools_called": ["molecule_properties"],    # each must be called (successfully or not)
                "tools_not_called": ["pubchem_lookup"],    # none may be called
                "cited_pmid_keywords": ["BRCA1"]}}         # >= 1 PMID cited; each cited PMID's title or
                                                           # abstract (in the literature store) holds one of
                                                           # the words (whole word, case-insensitive)

A row passes when every expectation holds. A row whose question raises fails with the error text;
the run goes on. Each run uses fresh session names (``eval-<run id>-<session>``) in a temporary
sessions database, so re-runs never see old conversations and the user's sessions are untouched.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from biomedgpt.core.errors import InputError
from biomedgpt.core.settings import Settings, get_settings

#: The assistant's default tools: ``tools_called`` / ``tools_not_called`` may name only these.
KNOWN_TOOLS = ("pubchem_lookup", "pubchem_similar", "uniprot_lookup", "uniprot_search", "literature_search",
               "pubmed_fetch", "molecule_properties", "similar_known", "describe_molecule", "describe_protein")
EXPECT_KEYS = ("answer_matches", "answer_not_matches", "tools_called", "tools_not_called", "cited_pmid_keywords")
ROW_KEYS = ("id", "category", "question", "session", "offline", "expect", "note")
_PMID_LABEL = re.compile(r"\bPMID[:\s]*(\d{1,9})\b", re.I)
_SESSION_CHARS = re.compile(r"[^A-Za-z0-9._:@-]+")


class EvalDataError(InputError):
    """An evaluation file or row is malformed; the message names the file and line (a usage error)."""


# ---------------------------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class Expect:
    """What a correct answer must (and must not) contain."""

    answer_matches: tuple[str, ...] = ()
    answer_not_matches: tuple[str, ...] = ()
    tools_called: tuple[str, ...] = ()
    tools_not_called: tuple[str, ...] = ()
    cited_pmid_keywords: tuple[str, ...] = ()


@dataclass(frozen=True)
class EvalRow:
    """One question of an evaluation file; ``where`` is ``FILE:LINE`` for messages."""

    id: str
    category: str
    question: str
    expect: Expect = field(default_factory=Expect)
    session: str | None = None
    offline: bool = False
    where: str = ""


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{what} must be a list of non-empty strings")
    return tuple(value)


def parse_row(data: Any, where: str = "<row>") -> EvalRow:
    """One row from its decoded JSON; an :class:`EvalDataError` names ``where`` and the problem.

    Every regex is compiled here, so a bad pattern is reported before anything runs.
    """
    try:
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - set(ROW_KEYS))
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(unknown)} (allowed: {', '.join(ROW_KEYS)})")
        for key in ("id", "category", "question"):
            if not isinstance(data.get(key), str) or not data[key].strip():
                raise ValueError(f"{key!r} must be a non-empty string")
        session = data.get("session")
        if session is not None and (not isinstance(session, str) or not session.strip()):
            raise ValueError("'session' must be a non-empty string when given")
        offline = data.get("offline", False)
        if not isinstance(offline, bool):
            raise ValueError("'offline' must be true or false")
        raw = data.get("expect", {})
        if not isinstance(raw, dict):
            raise ValueError("'expect' must be an object")
        unknown = sorted(set(raw) - set(EXPECT_KEYS))
        if unknown:
            raise ValueError(f"unknown expectation(s) {', '.join(unknown)} (allowed: {', '.join(EXPECT_KEYS)})")
        expect = Expect(**{key: _strings(raw[key], f"expect.{key}") for key in EXPECT_KEYS if key in raw})
        for pattern in expect.answer_matches + expect.answer_not_matches:
            try:
                re.compile(pattern, re.I)
            except re.error as error:
                raise ValueError(f"bad regex {pattern!r}: {error}") from None
        for name in expect.tools_called + expect.tools_not_called:
            if name not in KNOWN_TOOLS:
                raise ValueError(f"unknown tool {name!r} (known: {', '.join(KNOWN_TOOLS)})")
    except ValueError as error:
        row_id = data.get("id") if isinstance(data, dict) and isinstance(data.get("id"), str) else None
        label = f" (row {row_id!r})" if row_id else ""
        raise EvalDataError(f"{where}{label}: {error}") from None
    return EvalRow(id=data["id"].strip(), category=data["category"].strip(), question=data["question"],
                   expect=expect, session=session.strip() if session else None, offline=offline, where=where)


def parse_rows(lines: Iterable[str], source: str = "<rows>") -> list[EvalRow]:
    """Rows from JSONL text lines (blank lines skipped); ids must be unique."""
    rows: list[EvalRow] = []
    seen: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{source}:{number}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            raise EvalDataError(f"{where}: not valid JSON ({error.msg} at column {error.colno})") from None
        row = parse_row(data, where)
        if row.id in seen:
            raise EvalDataError(f"{where}: duplicate id {row.id!r} (first at {seen[row.id]})")
        seen[row.id] = where
        rows.append(row)
    return rows


def read_rows(path: str | Path) -> list[EvalRow]:
    """Read and check a JSONL evaluation file; every problem is an :class:`EvalDataError` naming FILE:LINE."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EvalDataError(f"evaluation file {path} does not exist") from None
    except IsADirectoryError:
        raise EvalDataError(f"evaluation file {path} is a folder, not a JSONL file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise EvalDataError(f"evaluation file {path} is unreadable: {error}") from None
    rows = parse_rows(text.splitlines(), str(path))
    if not rows:
        raise EvalDataError(f"evaluation file {path} holds no rows")
    return rows


def select_rows(rows: Sequence[EvalRow], category: str | None = None, limit: int | None = None) -> list[EvalRow]:
    """The rows of ``category`` (all when None), then the first ``limit`` of them."""
    if category is not None:
        known = sorted({row.category for row in rows})
        if category not in known:
            raise EvalDataError(f"no rows of category {category!r}; the file has: {', '.join(known)}")
        rows = [row for row in rows if row.category == category]
    return list(rows[:limit] if limit is not None else rows)


# ------------------------------------------------------------------------------------------- scoring


@dataclass
class Answer:
    """What the scorer reads from one ``Assistant.ask`` result."""

    text: str
    tool_calls: list[dict] = field(default_factory=list)
    citations: list[dict] = field(default_factory=list)

    @classmethod
    def from_result(cls, result: Any) -> Answer:
        return cls(text=str(getattr(result, "answer", "") or ""), tool_calls=list(getattr(result, "tool_calls", []) or []),
                   citations=list(getattr(result, "citations", []) or []))

    @property
    def tools(self) -> list[str]:
        return [str(call.get("name")) for call in self.tool_calls]

    def cited_pmids(self) -> list[str]:
        """PMIDs cited in the citations list or as ``[PMID n]`` labels in the text, first-seen order."""
        found = [m.group(1) for c in self.citations for m in _PMID_LABEL.finditer(str(c.get("label") or ""))]
        found += [m.group(1) for m in re.finditer(r"\[PMID[:\s]*(\d{1,9})\]", self.text, re.I)]
        return list(dict.fromkeys(found))


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _has_word(text: str, word: str) -> bool:
    """``word`` as a whole word (not inside a longer one: ATM is not in "treatment"), case-insensitive."""
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(word)}(?![A-Za-z0-9])", text, re.I) is not None


def score(row: EvalRow, answer: Answer, pmid_text: Callable[[str], str | None] | None = None) -> tuple[bool, str]:
    """``(passed, reason)``: the reason lists every failed expectation (empty when passed).

    ``pmid_text(pmid)`` returns the title and abstract of a PMID (None when unknown); it is needed
    only by ``cited_pmid_keywords``.
    """
    problems: list[str] = []
    expect = row.expect
    for pattern in expect.answer_matches:
        if not re.search(pattern, answer.text, re.I):
            problems.append(f"answer lacks /{pattern}/")
    for pattern in expect.answer_not_matches:
        found = re.search(pattern, answer.text, re.I)
        if found:
            problems.append(f"answer has /{pattern}/ ({_short(found.group(0), 40)!r})")
    called = answer.tools
    for name in expect.tools_called:
        if name not in called:
            problems.append(f"{name} not called (called: {', '.join(dict.fromkeys(called)) or 'none'})")
    for name in expect.tools_not_called:
        if name in called:
            problems.append(f"{name} called")
    if expect.cited_pmid_keywords:
        pmids = answer.cited_pmids()
        words = expect.cited_pmid_keywords
        if not pmids:
            problems.append("no PMID cited")
        for pmid in pmids:
            text = pmid_text(pmid) if pmid_text is not None else None
            if text is None:
                problems.append(f"PMID {pmid} is not in the literature store")
            elif not any(_has_word(text, word) for word in words):
                problems.append(f"PMID {pmid} ({_short(text, 50)!r}) mentions none of {', '.join(expect.cited_pmid_keywords)}")
    return not problems, "; ".join(problems)


class LiteratureLookup:
    """Title and abstract of a PMID from the literature store the assistant searches (then the bundled corpus)."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self._store: Any = None
        self._bundled: dict[str, str] | None = None
        self._cache: dict[str, str | None] = {}

    def _from_store(self, pmid: str) -> str | None:
        from biomedgpt.tools.literature import LiteratureStore

        if self._store is None:
            self._store = LiteratureStore(self.settings)
        found = self._store.collection.get(where={"pmid": pmid}, include=["documents", "metadatas"])
        documents = [d for d in (found.get("documents") or []) if d]
        if not documents:
            return None
        titles = {str((m or {}).get("title") or "") for m in (found.get("metadatas") or [])}
        return " ".join([*sorted(t for t in titles if t), *documents])

    def _from_bundled(self, pmid: str) -> str | None:
        if self._bundled is None:
            import gzip

            from biomedgpt.tools.literature import BUNDLED_CORPUS

            self._bundled = {}
            with gzip.open(BUNDLED_CORPUS, "rt", encoding="utf-8") as handle:
                for line in handle:
                    record = json.loads(line)
                    self._bundled[str(record.get("pmid"))] = f"{record.get('title') or ''} {record.get('abstract') or ''}"
        return self._bundled.get(pmid)

    def __call__(self, pmid: str) -> str | None:
        if pmid not in self._cache:
            text = None
            try:
                text = self._from_store(pmid)
            except Exception:  # noqa: BLE001 - an unreadable store falls back to the shipped corpus
                text = None
            self._cache[pmid] = text if text is not None else self._from_bundled(pmid)
        return self._cache[pmid]


# --------------------------------------------------------------------------------------------- runs


@dataclass
class RowResult:
    """One scored row (``--out`` writes ``to_dict()`` as one JSON line)."""

    id: str
    category: str
    question: str
    passed: bool
    reason: str
    answer: str = ""
    tools_called: list[str] = field(default_factory=list)
    citations: list[str] = field(default_factory=list)
    session: str | None = None
    offline: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AssistantReport:
    """The scores of one run; ``to_dict()`` is what ``eval assistant --json`` prints."""

    results: list[RowResult]
    run_id: str = ""
    seconds: float = 0.0

    @property
    def passed(self) -> int:
        return sum(r.passed for r in self.results)

    @property
    def total(self) -> int:
        return len(self.results)

    @property
    def by_category(self) -> dict[str, list[int]]:
        """``{category: [passed, total]}`` in order of first appearance."""
        groups: dict[str, list[int]] = {}
        for result in self.results:
            counts = groups.setdefault(result.category, [0, 0])
            counts[0] += int(result.passed)
            counts[1] += 1
        return groups

    @property
    def failures(self) -> list[RowResult]:
        return [r for r in self.results if not r.passed]

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "total": self.total, "by_category": self.by_category,
                "failures": [{"id": r.id, "reason": r.reason} for r in self.failures]}


def run_order(rows: Sequence[EvalRow], run_id: str) -> list[tuple[EvalRow, str | None]]:
    """``(row, session name)`` in the order the rows run: groups in order of first appearance, each
    session's rows consecutively in file order; session-less rows get None."""
    groups: dict[str, list[EvalRow]] = {}
    for index, row in enumerate(rows):
        key = f"s:{row.session}" if row.session is not None else f"r:{index}"
        groups.setdefault(key, []).append(row)
    order: list[tuple[EvalRow, str | None]] = []
    for members in groups.values():
        for row in members:
            order.append((row, session_name(run_id, row.session) if row.session is not None else None))
    return order


def session_name(run_id: str, session: str) -> str:
    """A valid, run-unique session name for a row's ``session``."""
    return f"eval-{run_id}-{_SESSION_CHARS.sub('-', session)}"[:128]


def offline_settings(settings: Settings) -> Settings:
    """``settings`` with ``offline=True`` (answers from the HTTP cache only)."""
    return settings.model_copy(update={"offline": True})


def scratch_home(settings: Settings, folder: str | Path) -> Settings:
    """``settings`` moved to the empty ``folder`` as home, sharing everything of the real home (the
    literature store, converted model weights, …) except the HTTP cache and the sessions database.

    Used by ``eval assistant --fixtures``: look-ups start from an empty cache, while the literature
    store and the weights are still found.
    """
    real = settings.home
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    # Only what is built once and read the same by every run is shared; caches, sessions and the rate
    # limiter's state (whose lock file must not be a link) stay in the scratch folder.
    for name in SHARED_HOME_FOLDERS:  # created in the real home, so what is built there is kept
        (real / name).mkdir(parents=True, exist_ok=True)
        if not (folder / name).exists():
            (folder / name).symlink_to(real / name, target_is_directory=True)
    return settings.model_copy(update={"home": folder})


#: Folders of ``BIOMEDGPT_HOME`` a scratch home links to: the literature store, converted model weights, the
#: fingerprint cache of a large molecule reference.
SHARED_HOME_FOLDERS = ("chroma", "models", "molecule_db")


def _default_factory(sessions_dir: Path) -> Callable[[Settings], Any]:
    """Assistants whose named sessions live in ``sessions_dir`` (not in ``BIOMEDGPT_HOME``)."""
    from biomedgpt.agent.assistant import Assistant
    from biomedgpt.agent.session import SESSIONS_FILE, SessionStore

    store = SessionStore(sessions_dir / SESSIONS_FILE)

    class EvalAssistant(Assistant):
        def store(self) -> SessionStore:
            return store

    def make(settings: Settings) -> Any:
        return EvalAssistant(settings=settings)

    make.store = store  # type: ignore[attr-defined]
    return make


def evaluate_assistant(
    rows: Sequence[EvalRow],
    *,
    settings: Settings | None = None,
    make_assistant: Callable[[Settings], Any] | None = None,
    pmid_text: Callable[[str], str | None] | None = None,
    run_id: str | None = None,
    progress: Callable[[int, int, RowResult], None] | None = None,
    on_result: Callable[[RowResult], None] | None = None,
) -> AssistantReport:
    """Ask every row's question and score the answer; returns an :class:`AssistantReport`.

    ``settings`` (default: the process-wide ones) serve rows without ``offline``; offline rows get a
    copy with ``offline=True``. ``make_assistant(settings)`` builds an object with ``ask(question,
    session=...)`` (default: an :class:`~biomedgpt.agent.assistant.Assistant` keeping its sessions in a
    temporary database). ``progress(done, total, result)`` and ``on_result(result)`` follow each row.
    """
    settings = settings or get_settings()
    run_id = run_id or uuid.uuid4().hex[:8]
    lookup = pmid_text or LiteratureLookup(settings)
    started = time.monotonic()
    results: list[RowResult] = []
    with tempfile.TemporaryDirectory(prefix="biomedgpt-eval-sessions-") as tmp:
        factory = make_assistant or _default_factory(Path(tmp))
        assistants: dict[bool, Any] = {}
        order = run_order(rows, run_id)
        try:
            for done, (row, session) in enumerate(order, 1):
                if row.offline not in assistants:
                    assistants[row.offline] = factory(offline_settings(settings) if row.offline else settings)
                result = _run_row(assistants[row.offline], row, session, lookup)
                results.append(result)
                if on_result is not None:
                    on_result(result)
                if progress is not None:
                    progress(done, len(order), result)
        finally:
            for assistant in assistants.values():
                close = getattr(assistant, "close", None)
                if callable(close):
                    close()
            store = getattr(factory, "store", None)
            if store is not None:
                store.close()
    by_id = {r.id: r for r in results}
    ordered = [by_id[row.id] for row in rows if row.id in by_id]  # report in file order
    return AssistantReport(ordered, run_id=run_id, seconds=round(time.monotonic() - started, 1))


def _run_row(assistant: Any, row: EvalRow, session: str | None, lookup: Callable[[str], str | None]) -> RowResult:
    started = time.monotonic()
    base = dict(id=row.id, category=row.category, question=row.question, session=row.session, offline=row.offline)
    try:
        answer = Answer.from_result(assistant.ask(row.question, session=session))
    except Exception as error:  # noqa: BLE001 - one failing row is recorded, the run goes on
        text = " ".join(str(error).split()) or type(error).__name__
        return RowResult(**base, passed=False, reason=f"error: {type(error).__name__}: {text}",
                         seconds=round(time.monotonic() - started, 2))
    try:
        passed, reason = score(row, answer, lookup)
    except Exception as error:  # noqa: BLE001 - e.g. the literature store failing during a PMID check
        passed, reason = False, f"error while scoring: {type(error).__name__}: {error}"
    return RowResult(**base, passed=passed, reason=reason, answer=answer.text, tools_called=answer.tools,
                     citations=[str(c.get("label", "")) for c in answer.citations],
                     seconds=round(time.monotonic() - started, 2))
