"""Jupyter: ``%load_ext biomedgpt``, then ``%biomed QUESTION`` or a ``%%biomed`` cell.

Results render as HTML: RDKit SVG depictions (``rdMolDraw2D``) of the molecules, property tables,
protein summaries, and citations as links to PubChem, UniProt and PubMed. The magics share one
session per kernel, so a follow-up in the next cell ("what is its molecular weight?") remembers;
``%biomed --session NAME ...`` (or ``-s NAME``) switches to a named session, e.g. one started with
``biomedgpt chat --session NAME``. A ``%biomed`` line may end in ``?``: IPython would read it as a help
request, so the extension registers an input transformer that hands such a line to the magic as it is
(:func:`keep_question_marks`). ``render_html(result)`` is also what ``AskResult`` shows in a notebook.

Each answer is displayed as one output with three forms: ``text/html`` (the rich view), ``text/markdown``
and ``text/plain`` (the answer and its sources as text), so a viewer without HTML — a terminal console, a
Markdown export, an LLM reading the notebook — gets the answer, never ``<IPython.core.display.HTML object>``.
Loading the extension silences library progress bars (``core.terminal.quiet_libraries``): a cell's only
outputs are its answers, with nothing on stderr.
"""

from __future__ import annotations

import html
import re
import shlex
import uuid
from typing import Any

from biomedgpt.agent.answer import LABEL_PATTERN
from biomedgpt.core.chem import try_parse_smiles
from biomedgpt.core.terminal import quiet_libraries
from biomedgpt.tools.records import RECORD_TYPES

_STATE: dict[str, Any] = {"assistant": None, "session": None}

_CSS = """<style>
.biomedgpt{font-family:system-ui,sans-serif;line-height:1.45;max-width:960px}
.biomedgpt .answer{margin:.3em 0 .8em}
.biomedgpt table{border-collapse:collapse;margin:.3em 0;font-size:.9em}
.biomedgpt td,.biomedgpt th{border:1px solid #ddd;padding:2px 8px;text-align:left;vertical-align:top}
.biomedgpt .mols{display:flex;flex-wrap:wrap;gap:12px}
.biomedgpt figure{margin:0;text-align:center;font-size:.85em}
.biomedgpt .model{background:#fff7e0;border-left:3px solid #e0a800;padding:4px 8px}
.biomedgpt .error{color:#a40000}
</style>"""


def depict_svg(smiles: str, size: tuple[int, int] = (260, 200)) -> str | None:
    """An SVG depiction of ``smiles`` drawn with RDKit's ``rdMolDraw2D``; None when it does not parse."""
    from rdkit.Chem.Draw import rdMolDraw2D

    mol = try_parse_smiles(smiles)
    if mol is None:
        return None
    drawer = rdMolDraw2D.MolDraw2DSVG(*size)
    rdMolDraw2D.PrepareAndDrawMolecule(drawer, mol)
    drawer.FinishDrawing()
    svg = drawer.GetDrawingText()
    return re.sub(r"<\?xml[^>]*\?>\s*", "", svg)


def _e(value: Any) -> str:
    return html.escape(str(value if value is not None else ""))


def _link_labels(text: str, citations: list[dict]) -> str:
    """The answer's Markdown as HTML (raw HTML in it is escaped), its ``[label]`` citations as links."""
    from markdown_it import MarkdownIt

    urls = {c["label"]: c.get("url") or "" for c in citations}

    def link(match: re.Match) -> str:
        parts = [p.strip() for p in re.split(r"[;,]\s*", match.group(1))]
        if not any(LABEL_PATTERN.match(p) for p in parts):
            return match.group(0)
        shown = [f'<a href="{_e(urls[p])}" target="_blank">{p}</a>' if urls.get(p) else p for p in parts]
        return "[" + "; ".join(shown) + "]"

    rendered = MarkdownIt("commonmark", {"html": False}).render(text or "")
    return re.sub(r"\[([^\[\]<>\n]{1,80})\]", link, rendered)


def _molecules(artifacts: dict[str, list[dict]]) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    for c in artifacts.get("compounds", []):
        if c.get("smiles"):
            seen.append((c["smiles"], f"{c.get('title') or ''} (PubChem CID {c['cid']})".strip()))
    for p in artifacts.get("properties", []):
        seen.append((p["smiles"], "query structure"))
    for a in artifacts.get("model_answers", []):
        if (a.get("inputs") or {}).get("smiles"):
            seen.append((a["inputs"]["smiles"], "model input"))
    for h in artifacts.get("similar", [])[:4]:
        if h.get("smiles"):
            seen.append((h["smiles"], f"{h.get('name') or h.get('id')} (similarity {h.get('similarity', 0):.2f})"))
    unique, keys = [], set()
    for smiles, caption in seen:
        if smiles not in keys:
            keys.add(smiles)
            unique.append((smiles, caption))
    return unique[:8]


def render_html(result: Any) -> str:
    """The HTML of an ``AskResult``: answer with linked citations, depictions, tables, sources."""
    artifacts = result.artifacts or {}
    parts = [_CSS, '<div class="biomedgpt">', f'<div class="answer">{_link_labels(result.answer, result.citations)}</div>']
    molecules = _molecules(artifacts)
    if molecules:
        figures = []
        for smiles, caption in molecules:
            svg = depict_svg(smiles)
            if svg:
                figures.append(f"<figure>{svg}<figcaption>{_e(caption)}</figcaption></figure>")
        parts.append(f'<div class="mols">{"".join(figures)}</div>')
    for kind in ("compounds", "properties", "proteins", "model_answers"):
        record_type = RECORD_TYPES[kind]
        parts += [record_type.model_validate(raw).html() for raw in artifacts.get(kind, [])]
    failed = [c for c in result.tool_calls if not c.get("ok")]
    if failed:
        items = "".join(f"<li>{_e(c['name'])}: {_e((c.get('error') or '')[:300])}</li>" for c in failed)
        parts.append(f'<div class="error"><b>Could not look up</b><ul>{items}</ul></div>')
    if result.citations:
        items = "".join(
            f'<li><a href="{_e(c["url"])}" target="_blank">[{_e(c["label"])}]</a> {_e(c.get("title"))}</li>'
            if c.get("url") else f"<li>[{_e(c['label'])}] {_e(c.get('title'))}</li>"
            for c in result.citations)
        parts.append(f"<div><b>Sources</b><ul>{items}</ul></div>")
    parts.append("</div>")
    return "".join(parts)


def _assistant():
    if _STATE["assistant"] is None:
        from biomedgpt.agent.assistant import Assistant

        _STATE["assistant"] = Assistant()
    if _STATE["session"] is None:
        _STATE["session"] = f"jupyter-{uuid.uuid4().hex[:8]}"
    return _STATE["assistant"]


def _split_options(line: str) -> tuple[str | None, str]:
    """``--session NAME rest`` / ``-s NAME rest`` → (NAME, rest)."""
    stripped = line.strip()
    for flag in ("--session", "-s"):
        if stripped.startswith(flag + " ") or stripped.startswith(flag + "="):
            rest = stripped[len(flag):].lstrip(" =")
            try:
                name = shlex.split(rest)[0]
            except (ValueError, IndexError):
                return None, stripped
            return name, rest[rest.find(name) + len(name):].strip()
    return None, stripped


def plain_text(result: Any) -> str:
    """The ``text/plain`` form of an answer: the answer, then its sources one per line with their links."""
    lines = [result.answer or "(no answer)"]
    if result.citations:
        lines += ["", "Sources:"]
        lines += [f"[{c['label']}] {c.get('title') or ''} {c.get('url') or ''}".rstrip() for c in result.citations]
    return "\n".join(lines)


def bundle(result: Any) -> dict[str, str]:
    """The MIME bundle an answer is displayed with: HTML, Markdown and plain text."""
    from biomedgpt.agent.export import markdown

    return {"text/plain": plain_text(result), "text/markdown": markdown(result), "text/html": render_html(result)}


def _show(data: dict[str, str]) -> None:
    from IPython.display import display

    display(data, raw=True)


def _message(text: str, html_text: str) -> dict[str, str]:
    return {"text/plain": text, "text/markdown": text, "text/html": html_text}


def biomed(line: str, cell: str | None = None):
    """``%biomed QUESTION`` / ``%%biomed`` cell: ask in this notebook's session and show the result."""
    from biomedgpt.core.errors import BiomedGPTError

    quiet_libraries()
    session, question = _split_options(line)
    assistant = _assistant()
    if session:
        _STATE["session"] = session
    if cell is not None and cell.strip():
        question = (question + "\n" + cell).strip()
    if not question:
        name = _STATE["session"]
        _show(_message(f"Session {name}. Ask with %biomed QUESTION.",
                       f"<p>Session <code>{_e(name)}</code>. Ask with <code>%biomed QUESTION</code>.</p>"))
        return None
    try:
        result = assistant.ask(question, session=_STATE["session"])
    except BiomedGPTError as error:
        _show(_message(f"error: {error}", f'<div class="biomedgpt error">error: {_e(error)}</div>'))
        return None
    _show(bundle(result))
    return None


_MAGIC_LINE = re.compile(r"^(?P<indent>[ \t]*)%biomed(?P<rest>[ \t].*?)\??[ \t]*$")


def keep_question_marks(lines: list[str]) -> list[str]:
    """An IPython input transformer: a ``%biomed`` line ending in ``?`` becomes the magic call with the whole
    question (IPython would otherwise show the magic's help). Other lines, and ``%%biomed`` cells, stay."""
    if lines and lines[0].lstrip().startswith("%%"):
        return lines
    out = []
    for line in lines:
        body = line.rstrip("\r\n")
        match = _MAGIC_LINE.match(body)
        if match and body.rstrip().endswith("?"):
            argument = match.group("rest").strip() + "?"
            newline = line[len(body):]
            out.append(f"{match.group('indent')}get_ipython().run_line_magic('biomed', {argument!r}){newline}")
        else:
            out.append(line)
    return out


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%biomed`` and ``%%biomed`` (``%load_ext biomedgpt``), the ``?`` transformer, and silence
    library progress bars."""
    quiet_libraries()
    ipython.register_magic_function(biomed, magic_kind="line_cell", magic_name="biomed")
    cleanup = getattr(ipython, "input_transformers_cleanup", None)
    if cleanup is not None and keep_question_marks not in cleanup:
        cleanup.append(keep_question_marks)


def current_session() -> str | None:
    """The session the magics use in this kernel."""
    return _STATE["session"]
