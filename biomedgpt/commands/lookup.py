"""``biomedgpt lookup compound QUERY [--json]`` and ``biomedgpt lookup protein QUERY [--json]``.

Why: the quickest way to check what the assistant will see for a molecule or protein, and a test of
connectivity, cache and offline mode (``BIOMEDGPT_OFFLINE=1 biomedgpt lookup compound aspirin``).
``--json`` prints one object with the ``Compound`` / ``ProteinEntry`` fields; otherwise a table.
Retries and slow-downs are shown on stderr as they happen.
"""

from __future__ import annotations

import json

import typer

lookup_app = typer.Typer(help="Look up a compound in PubChem or a protein in UniProt.", no_args_is_help=True)


def _progress_to_stderr(message: str, **_: object) -> None:
    typer.echo(f"… {message}", err=True)


def _show(record: dict, title: str, long_fields: tuple[str, ...] = ()) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_header=False, show_lines=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in record.items():
        if value in (None, [], ""):
            continue
        if name == "descriptions":
            text = "\n".join(f"{d['text']} ({d['source']})" for d in value)
        elif isinstance(value, list):
            shown = value[:12]
            text = ", ".join(map(str, shown)) + (f" … (+{len(value) - len(shown)})" if len(value) > len(shown) else "")
        else:
            text = str(value)
        if name in long_fields and len(text) > 400:
            text = text[:400] + f"… ({len(text)} characters)"
        table.add_row(name, text)
    Console().print(table)


@lookup_app.command("compound")
def compound(
    query: str = typer.Argument(..., help="A name, PubChem CID, SMILES or InChIKey."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object with the Compound fields."),
) -> None:
    """A PubChem compound with properties, top synonyms and descriptions."""
    from biomedgpt.tools.progress import listen
    from biomedgpt.tools.pubchem import PubChemClient

    with listen(_progress_to_stderr):
        found = PubChemClient().compound(query)
    if as_json:
        typer.echo(json.dumps(found.model_dump()))
        return
    _show(found.model_dump(), f"{found.label}: {found.title or found.iupac_name or query}")


@lookup_app.command("protein")
def protein(
    query: str = typer.Argument(..., help='A UniProt accession (P05067) or a name/gene, optionally with an organism ("APP human").'),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object with the ProteinEntry fields."),
) -> None:
    """A UniProtKB entry: names, genes, organism, function, location, family, sequence, GO terms, structures."""
    from biomedgpt.tools.errors import NotFound
    from biomedgpt.tools.progress import listen
    from biomedgpt.tools.uniprot import UniProtClient

    client = UniProtClient()
    with listen(_progress_to_stderr):
        entries = client.find(query, size=1)
    if not entries:
        raise NotFound("UniProt", f"no entry matches {query!r} (try an accession such as P05067, or a gene name)")
    found = entries[0]
    if as_json:
        typer.echo(json.dumps(found.model_dump()))
        return
    _show(found.model_dump(), f"{found.label}: {found.protein_name or found.accession}",
          long_fields=("sequence", "function"))


def register(app: typer.Typer) -> None:
    app.add_typer(lookup_app, name="lookup")
