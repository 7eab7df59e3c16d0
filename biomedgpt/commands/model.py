"""``biomedgpt demo`` and ``biomedgpt generate``: run questions about a molecule and a protein through the BioMedGPT model.

Why a demo command: ``make demo`` must show the whole multimodal path (SMILES → GIN → proj_mol and
sequence → ESM-2 → proj_prot, spliced into the LM) on a fresh clone, offline, and say plainly when the
encoders are untrained so nobody mistakes the answers for knowledge.
"""

from __future__ import annotations

import typer

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
# Human insulin B chain (UniProt P01308, residues 25-54): short, real, and well known.
INSULIN_B_CHAIN = "FVNQHLCGSHLVEALYLVCGERGFFYTPKT"


def _untrained_note(model) -> str | None:
    if model.config.trained:
        return None
    return (f"the {model.config.name} model's molecule/protein encoders and adaptors are UNTRAINED "
            "(freshly initialised, seed 0): answers show the pipeline works, not what the molecule or protein is.")


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        model_name: str = typer.Option("mini", "--model", help="mini | tiny | a saved model folder"),
        max_new_tokens: int = typer.Option(48, help="Tokens to generate per answer."),
    ) -> None:
        """Ask the BioMedGPT model one molecule question (aspirin) and one protein question (insulin B chain)."""
        from rich.console import Console
        from rich.panel import Panel

        from biomedgpt.model import load_model

        console = Console()
        with console.status(f"loading the {model_name} model…"):
            model = load_model(model_name)
        note = _untrained_note(model)
        if note:
            console.print(Panel(note, title="note", border_style="yellow"))
        cases = [
            ("molecule", "What is this molecule? Describe its structure and use.", {"smiles": ASPIRIN}, f"SMILES {ASPIRIN} (aspirin)"),
            ("protein", "What is the function of this protein?", {"sequence": INSULIN_B_CHAIN},
             f"sequence {INSULIN_B_CHAIN} (insulin B chain)"),
        ]
        for kind, question, inputs, shown in cases:
            with console.status(f"generating the {kind} answer…"):
                answer = model.ask(question, max_new_tokens=max_new_tokens, **inputs)
            console.print(Panel(f"[bold]Q:[/bold] {question}\n[dim]{shown}[/dim]\n\n[bold]A:[/bold] {answer or '(empty)'}",
                                title=f"{kind} question · model {model.config.name}"
                                      + ("" if model.config.trained else " · untrained encoders")))

    @app.command("export-weights")
    def export_weights_command(
        source: str = typer.Argument(..., help="A trained model folder: train align's RUN_DIR/model."),
        out: str = typer.Option(None, "--out", help="Destination folder (default: the package's model/weights/mini)."),
        dtype: str = typer.Option("float16", help="float16 | bfloat16 | float32"),
    ) -> None:
        """Ship a trained model's encoders and adaptors as the mini default (atomic; prints sizes and sha256)."""
        from biomedgpt.model.weights import export_weights

        for name, (size, digest) in export_weights(source, out, dtype=dtype).items():
            typer.echo(f"{name}\t{size}\t{digest}")

    @app.command()
    def generate(
        question: str = typer.Argument(..., help="The question to ask."),
        smiles: list[str] = typer.Option(None, "--smiles", help="A molecule (repeatable)."),
        sequence: list[str] = typer.Option(None, "--sequence", help="A protein sequence (repeatable)."),
        model_name: str = typer.Option("mini", "--model", help="mini | tiny | a saved model folder"),
        max_new_tokens: int = typer.Option(64, help="Tokens to generate."),
    ) -> None:
        """Ask the BioMedGPT model directly about molecules (--smiles) and/or proteins (--sequence)."""
        from biomedgpt.core.chem import parse_smiles, validate_sequence
        from biomedgpt.model import load_model

        # Inputs first: a typo must not cost a model load (or the one-time LM conversion).
        for value in smiles or []:
            parse_smiles(value, where=" (--smiles)")
        for value in sequence or []:
            validate_sequence(value)
        model = load_model(model_name)
        note = _untrained_note(model)
        if note:
            typer.echo(f"note: {note}", err=True)
        typer.echo(model.ask(question, smiles=smiles or None, sequence=sequence or None, max_new_tokens=max_new_tokens))
