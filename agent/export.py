"""Exports of answers: ``rows(result)`` (→ CSV, ``to_dataframe()``), ``write_sdf``, ``bibtex`` / ``ris``, ``markdown``.

``biomedgpt ask/run --format md|json|csv``, ``--sdf FILE`` and ``--cite bibtex|ris FILE`` and the chat's
``/export FILE`` all go through here, for an ``AskResult`` or a script's ``RunReport`` alike.

Why rows are built from the answer's own subjects: a CSV row is one entity of the answer (a molecule with
its PubChem and RDKit records joined, a protein, a nearest known structure, a passage), and its columns are
the attributes the answer shows — the asked ones, else the answer's default table columns — with the value
as the answer states it (the unit moves into the header when every row has the same one) and a ``source``
column with the citation labels, so each cell can be traced like a sentence of the answer.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from biomedgpt.agent.answer import (
    ATTRIBUTE_NAMES,
    DEFAULT_MOLECULE_COLUMNS,
    DEFAULT_PROTEIN_COLUMNS,
    subjects_from_state,
)
from biomedgpt.core.errors import BiomedGPTError, InputError
from biomedgpt.core.files import atomic_write_text
from biomedgpt.tools.records import Passage, SimilarHit, snippet

FORMATS = ("md", "json", "csv")
CITE_FORMATS = ("bibtex", "ris")
#: Units that move from the values into the column header when a column has one unit throughout.
_UNITS = (" g/mol", " Da", " Å²", " amino acids")


class MissingExtra(BiomedGPTError, ImportError):
    """An optional dependency (an extra) is not installed; the message says how to install it."""


# ----------------------------------------------------------------------------- what an answer holds


def _parts(source: Any) -> list[tuple[str | None, Any]]:
    """``[(step id or None, result-like)]``: an ``AskResult`` is one part, a ``RunReport`` one per step."""
    steps = getattr(source, "steps", None)
    if steps is not None and not hasattr(source, "artifacts"):
        return [(step.id, step) for step in steps if getattr(step, "ok", True)]
    return [(None, source)]


def _attributes(result: Any, subjects: Sequence[Any]) -> list[str]:
    asked = [a for a in (getattr(result, "attributes", None) or []) if a != "unlisted"]
    if asked:
        return asked
    if not subjects:
        return []
    return list(DEFAULT_PROTEIN_COLUMNS if subjects[0].kind == "protein" else DEFAULT_MOLECULE_COLUMNS)


def _entity_rows(result: Any) -> list[dict[str, Any]]:
    artifacts = getattr(result, "artifacts", None) or {}
    subjects = subjects_from_state(artifacts)
    attributes = _attributes(result, subjects)
    rows: list[dict[str, Any]] = []
    for subject in subjects:
        row: dict[str, Any] = {"entity": subject.name.strip("`"), "kind": subject.kind}
        if subject.kind == "molecule" and subject.smiles:
            row["smiles"] = subject.smiles
        labels: list[str] = []
        for attribute in attributes:
            found = subject.value(attribute)
            row[attribute] = found.value if found else ""
            if found and found.label not in labels:
                labels.append(found.label)
        record = subject.protein or subject.compound or subject.properties
        if not labels and record is not None:
            labels.append(record.label)
        row["source"] = "; ".join(labels)
        row["url"] = record.url if record is not None else ""
        rows.append(row)
    for raw in artifacts.get("similar") or []:
        hit = SimilarHit.model_validate(raw)
        rows.append({"entity": hit.name or hit.id, "kind": f"similar {hit.kind}", "smiles": hit.smiles or "",
                     "similarity": round(hit.similarity, 3), "description": snippet(hit.description, 1, 240),
                     "source": hit.label, "url": hit.link})
    for raw in artifacts.get("passages") or []:
        passage = Passage.model_validate(raw)
        rows.append({"entity": passage.title or passage.label, "kind": "passage", "year": passage.year or "",
                     "score": round(passage.score, 3), "passage": snippet(passage.text, 2, 300),
                     "source": passage.label, "url": passage.url})
    return rows


def _move_units(rows: list[dict[str, Any]], columns: list[str]) -> dict[str, str]:
    """Header names: the attribute's human name, with the unit when every value of the column carries it."""
    headers = {}
    for column in columns:
        name = ATTRIBUTE_NAMES.get(column, column)
        values = [str(r[column]) for r in rows if r.get(column) not in (None, "")]
        for unit in _UNITS:
            if values and all(v.endswith(unit) for v in values):
                for row in rows:
                    if row.get(column) not in (None, ""):
                        row[column] = str(row[column])[: -len(unit)]
                name = f"{name} ({unit.strip()})"
                break
        headers[column] = name
    return headers


def rows(source: Any) -> tuple[list[str], list[dict[str, Any]]]:
    """``(columns, rows)`` of an ``AskResult`` or a ``RunReport``: one row per entity (a ``step`` column first
    for a report), the attributes shown, then ``source`` (citation labels) and ``url``."""
    found: list[dict[str, Any]] = []
    for step, result in _parts(source):
        for row in _entity_rows(result):
            found.append({"step": step, **row} if step is not None else row)
    order: list[str] = []
    for row in found:
        for key in row:
            if key not in order:
                order.append(key)
    tail = [c for c in ("source", "url") if c in order]
    keys = [c for c in order if c not in tail] + tail
    headers = _move_units(found, [k for k in keys if k not in ("step", "entity", "kind", "smiles", "source", "url")])
    columns = [headers.get(k, k) for k in keys]
    named = [{headers.get(k, k): row.get(k, "") for k in keys} for row in found]
    return columns, named


def to_csv(source: Any) -> str:
    """The rows as CSV text (a header line, then one line per entity)."""
    columns, found = rows(source)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns or ["entity", "kind", "source", "url"], restval="",
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(found)
    return buffer.getvalue()


def to_dataframe(source: Any) -> Any:
    """The rows as a ``pandas.DataFrame`` (needs the ``pandas`` extra: ``pip install 'biomedgpt[pandas]'``)."""
    try:
        import pandas as pd
    except ImportError:
        raise MissingExtra("to_dataframe() needs pandas: pip install 'biomedgpt[pandas]'") from None
    columns, found = rows(source)
    return pd.DataFrame(found, columns=columns)


# ----------------------------------------------------------------------------- Markdown and JSON


def markdown(result: Any) -> str:
    """An ``AskResult`` as Markdown: the answer, its sources as links, the tool calls."""
    if hasattr(result, "to_markdown"):
        return result.to_markdown()
    lines = [result.answer or "(no answer)", ""] + evidence_markdown(result.citations, result.tool_calls)
    return "\n".join(lines).rstrip() + "\n"


def evidence_markdown(citations: list[dict], tool_calls: list[dict]) -> list[str]:
    """The Markdown lines after an answer: its sources as links, then the tool calls and whether they worked."""
    lines: list[str] = []
    if citations:
        lines.append("**Sources**")
        for c in citations:
            title = f" {c['title']}" if c.get("title") else ""
            link = f" — <{c['url']}>" if c.get("url") else ""
            lines.append(f"- [{c['label']}]{title}{link}")
        lines.append("")
    if tool_calls:
        calls = ", ".join(f"{c['name']} {'ok' if c['ok'] else 'failed'}" for c in tool_calls)
        lines += [f"**Tool calls:** {calls}", ""]
    return lines


def to_json(source: Any) -> str:
    if hasattr(source, "to_json"):
        return source.to_json()
    return json.dumps(source.to_dict(), indent=2, ensure_ascii=False, default=str)


def render(source: Any, fmt: str) -> str:
    """``source`` (an ``AskResult`` or a ``RunReport``) as ``md``, ``json`` or ``csv`` text."""
    if fmt == "md":
        return markdown(source)
    if fmt == "json":
        return to_json(source)
    if fmt == "csv":
        return to_csv(source)
    raise InputError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


# ----------------------------------------------------------------------------- molecules (SDF)


def molecules(source: Any) -> list[dict[str, Any]]:
    """The molecules of an answer: its subjects with a structure, then its nearest known structures, as
    ``{smiles, name, properties: {...}}`` (the properties are the row's attributes, source and url)."""
    found: list[dict[str, Any]] = []
    seen: set[str] = set()
    for row in rows(source)[1]:
        smiles = row.get("smiles")
        if row.get("kind") not in ("molecule", "similar molecule"):
            continue
        if not smiles or smiles in seen:
            continue
        seen.add(smiles)
        props = {k: v for k, v in row.items() if k not in ("smiles", "entity") and v not in (None, "")}
        found.append({"smiles": smiles, "name": str(row.get("entity") or smiles), "properties": props})
    return found


def write_sdf(source: Any, path: str | Path) -> int:
    """Write the answer's molecules to ``path`` with RDKit's ``SDWriter`` (2D coordinates, the name as the
    title, the attributes, source and url as SD properties); returns how many were written."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    from biomedgpt.core.chem import try_parse_smiles

    mols = molecules(source)
    if not mols:
        raise InputError("the answer holds no molecules: nothing to write to the SDF file")
    target = Path(path)
    buffer = io.StringIO()
    writer = Chem.SDWriter(buffer)
    written = 0
    for item in mols:
        mol = try_parse_smiles(item["smiles"])
        if mol is None:
            continue
        mol = Chem.Mol(mol)
        AllChem.Compute2DCoords(mol)
        mol.SetProp("_Name", item["name"])
        mol.SetProp("smiles", item["smiles"])
        for key, value in item["properties"].items():
            mol.SetProp(str(key), str(value))
        writer.write(mol)
        written += 1
    writer.close()
    atomic_write_text(target, buffer.getvalue())
    return written


# ----------------------------------------------------------------------------- literature (BibTeX, RIS)


def _all_citations(source: Any) -> list[tuple[dict, Mapping[str, Any]]]:
    found: list[tuple[dict, Mapping[str, Any]]] = []
    for _, result in _parts(source):
        artifacts = getattr(result, "artifacts", None) or {}
        for citation in getattr(result, "citations", None) or []:
            found.append((citation, artifacts))
    return found


def literature(source: Any) -> list[dict[str, Any]]:
    """The literature an answer cites (PubMed records and ingested documents), once each:
    ``{label, pmid, title, year, url, source}``."""
    entries: dict[str, dict[str, Any]] = {}
    for citation, artifacts in _all_citations(source):
        label = citation.get("label", "")
        if not (label.startswith("PMID ") or label.startswith("Doc ")) or label in entries:
            continue
        entry = {"label": label, "pmid": label[5:] if label.startswith("PMID ") else None,
                 "title": re.sub(r" \(chunk \d+\)$", "", citation.get("title") or ""), "year": None,
                 "url": citation.get("url") or "", "source": None}
        for raw in artifacts.get("passages") or []:
            passage = Passage.model_validate(raw)
            if passage.label == label:
                entry["title"] = passage.title or entry["title"]
                entry["year"] = passage.year
                entry["source"] = passage.source
                break
        entries[label] = entry
    return list(entries.values())


def _bibtex_text(value: str) -> str:
    return re.sub(r"([{}])", r"\\\1", " ".join(str(value).split()))


def _key(entry: Mapping[str, Any]) -> str:
    if entry["pmid"]:
        return f"pmid{entry['pmid']}"
    return "doc_" + (re.sub(r"[^A-Za-z0-9]+", "_", entry["label"][4:]).strip("_") or "document")


def bibtex(source: Any) -> str:
    """The cited literature as BibTeX: ``@article`` for PubMed records, ``@misc`` for ingested documents."""
    blocks = []
    for entry in literature(source):
        kind = "article" if entry["pmid"] else "misc"
        fields = [("title", "{" + _bibtex_text(entry["title"] or entry["label"]) + "}")]
        if entry["year"]:
            fields.append(("year", str(entry["year"])))
        if entry["pmid"]:
            fields += [("pmid", entry["pmid"]), ("note", f"PMID: {entry['pmid']}")]
        elif entry["source"]:
            fields.append(("note", f"Ingested document {_bibtex_text(Path(entry['source']).name)}"))
        if entry["url"]:
            fields.append(("url", entry["url"]))
        body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields)
        blocks.append(f"@{kind}{{{_key(entry)},\n{body}\n}}\n")
    return "\n".join(blocks)


def ris(source: Any) -> str:
    """The cited literature as RIS (``TY  - JOUR`` for PubMed records, ``GEN`` for ingested documents)."""
    blocks = []
    for entry in literature(source):
        lines = [f"TY  - {'JOUR' if entry['pmid'] else 'GEN'}", f"TI  - {' '.join((entry['title'] or entry['label']).split())}"]
        if entry["year"]:
            lines.append(f"PY  - {entry['year']}")
        if entry["pmid"]:
            lines += [f"AN  - {entry['pmid']}", "DB  - PubMed", f"ID  - PMID{entry['pmid']}"]
        if entry["url"]:
            lines.append(f"UR  - {entry['url']}")
        lines.append("ER  - ")
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


def write_citations(source: Any, fmt: str, path: str | Path) -> int:
    """Write the cited literature as ``bibtex`` or ``ris`` to ``path``; returns how many entries."""
    if fmt not in CITE_FORMATS:
        raise InputError(f"--cite {fmt!r}: use bibtex or ris")
    entries = literature(source)
    if not entries:
        raise InputError("the answer cites no literature (no PMID or ingested document): nothing to write")
    atomic_write_text(Path(path), bibtex(source) if fmt == "bibtex" else ris(source))
    return len(entries)


def export_to(source: Any, path: str | Path) -> str:
    """Write ``source`` to ``path`` in the format its extension names (.md .json .csv .sdf .bib .ris);
    returns a one-line description of what was written (the chat's ``/export FILE``)."""
    target = Path(path).expanduser()
    suffix = target.suffix.lower()
    if suffix in (".md", ".markdown"):
        atomic_write_text(target, markdown(source))
        return f"wrote the answer as Markdown to {target}"
    if suffix == ".json":
        atomic_write_text(target, to_json(source) + "\n")
        return f"wrote the answer as JSON to {target}"
    if suffix == ".csv":
        text = to_csv(source)
        atomic_write_text(target, text)
        return f"wrote {max(0, text.count(chr(10)) - 1)} row(s) as CSV to {target}"
    if suffix == ".sdf":
        return f"wrote {write_sdf(source, target)} molecule(s) to {target}"
    if suffix in (".bib", ".bibtex", ".ris"):
        fmt = "ris" if suffix == ".ris" else "bibtex"
        return f"wrote {write_citations(source, fmt, target)} reference(s) as {fmt} to {target}"
    raise InputError(f"cannot tell the format of {str(path)!r}: end it in .md, .json, .csv, .sdf, .bib or .ris")
