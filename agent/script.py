"""Scripted look-ups: ``biomedgpt run SCRIPT.yaml [--out report.md|report.jsonl] [--resume]``.

A script is YAML::

    session: nsaid-profile          # optional; steps share memory
    vars:
      compounds: [aspirin, ibuprofen, "CC(C)Cc1ccc(cc1)C(C)C(=O)O"]
    steps:
      - ask: "Describe {item} and give its molecular weight"
        for_each: compounds
      - ask: "Which of them has the highest logP?"

Why it is built this way: a long run must survive a failing look-up (the step's error is recorded
and the run goes on) and an interruption (after every step the state file next to the report is
rewritten atomically; ``--resume`` skips the steps that finished, and counts them as done). Ctrl-C cancels
the running step within about two seconds (``core/cancel.py``) and ends the run with the finished steps
saved (``RunReport.interrupted``). The report holds every step's answer, citations, tool calls, records and
error. Python: ``Assistant().run("script.yaml", out="r.md")``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import string
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from biomedgpt.agent.export import evidence_markdown
from biomedgpt.core.cancel import Cancelled, iterate_interruptible, run_interruptible
from biomedgpt.core.errors import BiomedGPTError, InputError
from biomedgpt.core.files import atomic_write_text as atomic_write
from biomedgpt.core.terminal import StatusLine
from pydantic import BaseModel, ConfigDict, Field, ValidationError

REPORT_FORMATS = (".md", ".jsonl")


class Step(BaseModel):
    """One step: a question template, optionally repeated for each item of a list variable."""

    model_config = ConfigDict(extra="forbid")

    ask: str = Field(min_length=1)
    for_each: str | None = None
    name: str | None = None


class Script(BaseModel):
    """A parsed script (``session``, ``vars``, ``steps``; ``title`` is optional)."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = None
    session: str | None = None
    vars: dict[str, Any] = Field(default_factory=dict)
    steps: list[Step] = Field(min_length=1)


@dataclass
class PlannedStep:
    """A concrete question of the run, with a stable id (``2`` or ``1.3`` for for_each items)."""

    id: str
    question: str


@dataclass
class StepResult:
    """What one step produced; ``ok`` is False when it failed (``error`` says why)."""

    id: str
    question: str
    ok: bool
    answer: str = ""
    citations: list[dict] = field(default_factory=list)
    tool_calls: list[dict] = field(default_factory=list)
    error: str | None = None
    resumed: bool = False
    #: The step's records (``AskResult.artifacts``) and the attributes its question asked for (exports).
    artifacts: dict[str, list[dict]] = field(default_factory=dict)
    attributes: list[str] = field(default_factory=list)


@dataclass
class RunReport:
    """The result of a script run (``interrupted``: Ctrl-C ended it after ``len(steps)`` of ``total`` steps)."""

    title: str
    session: str
    steps: list[StepResult]
    out: str | None = None
    total: int = 0
    interrupted: bool = False

    @property
    def failed(self) -> list[StepResult]:
        return [s for s in self.steps if not s.ok]

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_markdown(self) -> str:
        lines = [f"# {self.title}", "",
                 f"Session `{self.session}` · {len(self.steps)} steps · {len(self.steps) - len(self.failed)} ok · "
                 f"{len(self.failed)} failed", ""]
        for step in self.steps:
            lines += [f"## {step.id}. {step.question}", ""]
            if step.ok:
                lines += [step.answer, ""]
            else:
                lines += [f"**Error:** {step.error}", ""]
            lines += evidence_markdown(step.citations, step.tool_calls)
        return "\n".join(lines).rstrip() + "\n"

    def to_jsonl(self) -> str:
        return "".join(json.dumps(asdict(step), ensure_ascii=False, default=str) + "\n" for step in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "session": self.session, "out": self.out, "total": self.total or len(self.steps),
                "interrupted": self.interrupted, "steps": [asdict(step) for step in self.steps]}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, default=str)

    def to_dataframe(self) -> Any:
        """One row per entity of every step (a ``step`` column first); needs the ``pandas`` extra."""
        from biomedgpt.agent.export import to_dataframe

        return to_dataframe(self)


def load_script(source: str | Path | dict | Script) -> tuple[Script, str]:
    """Parse a script from a path, a dict or a ``Script``; returns it and a display name."""
    if isinstance(source, Script):
        return source, "script"
    name = "script"
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise InputError(f"script {str(source)!r} does not exist")
        name = path.name
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            raise InputError(f"script {path} is not valid YAML: {error}") from error
    else:
        data = source
    if not isinstance(data, dict):
        raise InputError(f"script {name} must be a mapping with 'steps' (and optional 'session', 'vars')")
    try:
        script = Script.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'script'}: {e['msg']}" for e in error.errors())
        raise InputError(f"script {name} is not valid: {problems}") from error
    return script, name


def _format(template: str, values: dict[str, Any], where: str) -> str:
    names = [field_name for _, field_name, _, _ in string.Formatter().parse(template) if field_name]
    missing = [n for n in names if n not in values]
    if missing:
        raise InputError(f"{where}: {template!r} uses {{{missing[0]}}}, which is not in vars (or {{item}} "
                         "outside for_each)")
    shown = {k: ", ".join(map(str, v)) if isinstance(v, (list, tuple)) else v for k, v in values.items()}
    try:
        return template.format(**shown)
    except (ValueError, IndexError, KeyError) as error:
        raise InputError(f"{where}: cannot fill in {template!r}: {error}") from error


def expand(script: Script) -> list[PlannedStep]:
    """The concrete questions of a script, in order, with their step ids."""
    planned: list[PlannedStep] = []
    for index, step in enumerate(script.steps, start=1):
        where = f"step {index}"
        if step.for_each is None:
            planned.append(PlannedStep(str(index), _format(step.ask, dict(script.vars), where)))
            continue
        items = script.vars.get(step.for_each)
        if not isinstance(items, list) or not items:
            raise InputError(f"{where}: for_each {step.for_each!r} must name a non-empty list in vars")
        for sub, item in enumerate(items, start=1):
            values = {**script.vars, "item": item}
            planned.append(PlannedStep(f"{index}.{sub}", _format(step.ask, values, where)))
    return planned


def state_path(out: Path) -> Path:
    """Where the resume state of a report lives: next to it, ``report.md.state.json``."""
    return out.with_name(out.name + ".state.json")


def _fingerprint(script: Script) -> str:
    return hashlib.sha256(script.model_dump_json().encode()).hexdigest()[:16]


def _ask(assistant: Any, question: str, session: str, show: Callable[[str], None]) -> Any:
    """One step's answer, Ctrl-C-interruptible; the tools' progress goes to ``show`` (the status line)."""
    if not hasattr(assistant, "stream"):
        return run_interruptible(assistant.ask, question, session=session)
    from biomedgpt.agent.render import describe_event

    result = None
    for event in iterate_interruptible(lambda: assistant.stream(question, session=session)):
        if event.kind == "result":
            result = event.data
        elif event.kind in ("tool_call", "tool_result", "progress"):
            show(describe_event(event) or "")
    if result is None:  # pragma: no cover - a stream always ends with its result
        raise BiomedGPTError(f"no answer to {question!r}")
    return result


def run_script(assistant: Any, source: str | Path | dict | Script, *, out: str | Path | None = None,
               resume: bool = False, progress: bool | Callable[[int, int, str], None] = False) -> RunReport:
    """Run every step with ``assistant`` (an ``Assistant``); see the module docstring.

    ``progress``: True shows one status line on stderr when it is a terminal (``step 3/8 (2 resumed): …``);
    a callable gets ``(done, total, text)`` before each step and at the end.
    """
    script, name = load_script(source)
    planned = expand(script)
    out_path = Path(out) if out is not None else None
    if out_path is not None and out_path.suffix not in REPORT_FORMATS:
        raise InputError(f"--out {str(out)!r}: the report must end in .md or .jsonl")
    if resume and out_path is None:
        raise InputError("--resume needs --out: the resume state is kept next to the report")

    saved: dict[str, Any] = {}
    state_file = state_path(out_path) if out_path is not None else None
    if resume and state_file is not None and state_file.exists():
        try:
            saved = json.loads(state_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise InputError(f"resume state {state_file} is unreadable ({error}); run without --resume") from error
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(name).stem).strip("-.") or "script"
    session = script.session or saved.get("session") or f"run-{stem[:40]}-{uuid.uuid4().hex[:8]}"
    done: dict[str, dict] = saved.get("steps", {}) if saved.get("fingerprint") == _fingerprint(script) else {}

    results: list[StepResult] = []
    report = RunReport(title=f"Report: {script.title or name}", session=session, steps=results,
                       out=str(out_path) if out_path else None, total=len(planned))

    def save() -> None:
        if out_path is None or state_file is None:
            return
        state = {"fingerprint": _fingerprint(script), "session": session,
                 "steps": {r.id: asdict(r) for r in results if r.ok}}
        atomic_write(state_file, json.dumps(state, ensure_ascii=False, indent=1, default=str))
        atomic_write(out_path, report.to_markdown() if out_path.suffix == ".md" else report.to_jsonl())

    known = {f.name for f in dataclasses.fields(StepResult)}
    with StatusLine(f"{name}: starting", enabled=progress is True) as line:

        def tell(text: str) -> None:
            resumed = sum(1 for r in results if r.resumed)
            count = f"{len(results)}/{len(planned)}" + (f" ({resumed} resumed)" if resumed else "")
            if callable(progress):
                progress(len(results), len(planned), text)
            line.update(f"{name}: step {count}: {text}" if text else f"{name}: {count} steps")

        try:
            for step in planned:
                previous = done.get(step.id)
                if previous and previous.get("question") == step.question and previous.get("ok"):
                    results.append(StepResult(**{**{k: v for k, v in previous.items() if k in known},
                                                 "resumed": True}))  # a skipped step is a finished one
                    continue
                tell(step.question[:60])
                try:
                    answer = _ask(assistant, step.question, session, lambda text, q=step.question: tell(
                        f"{q[:40]} {text}"))
                    results.append(StepResult(step.id, step.question, ok=True, answer=answer.answer,
                                              citations=answer.citations, tool_calls=answer.tool_calls,
                                              artifacts=answer.artifacts,
                                              attributes=list(getattr(answer, "attributes", None) or [])))
                except BiomedGPTError as error:
                    results.append(StepResult(step.id, step.question, ok=False, error=str(error)))
                except Exception as error:  # noqa: BLE001 - a failing step is recorded and the run goes on
                    results.append(StepResult(step.id, step.question, ok=False,
                                              error=f"{type(error).__name__}: {error}"))
                save()
        except (Cancelled, KeyboardInterrupt):
            report.interrupted = True  # the running step left nothing; the finished ones are saved
        tell("")
    save()
    return report
