"""``biomedgpt eval captioning|protein-qa|mcqa|assistant``: score predictions, or generate them and score.

Why a command: the published protocol (MolT5 / ChEBI-20 for captions) is easy to get subtly wrong, so
users score their own prediction files with exactly the code the project reports numbers with.
Each command prints a rich table, or one JSON object with ``--json``. Progress goes to stderr.
``eval assistant`` asks the whole assistant the questions of a JSONL file and scores the answers
(``agent/evaluation.py``); ``--fixtures DIR`` serves PubChem, UniProt and E-utilities from recorded
bodies on a loopback server (``biomedgpt.fixtureserver``) for the whole run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import typer

eval_app = typer.Typer(help="Evaluate: molecule captioning (ChEBI-20), protein QA (UniProtQA), MCQA, the assistant.",
                       no_args_is_help=True)

_VOCAB_HELP = ("WordPiece vocabulary folder (vocab.txt). Default: the shipped SciBERT uncased vocabulary "
               "(MolT5 protocol); for --protocol openbiomed-v2 a bert-base-uncased folder.")
_RETRIEVAL_HELP = ("on: retrieval context in the prompt; off: none; only: copy the nearest reference's description "
                   "(the baseline, no model needed). Default: how the model was trained.")


def _emit(result: dict[str, Any], as_json: bool, title: str) -> None:
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in result.items():
        if key in ("by_question", "by_dataset"):
            continue
        table.add_row(key, _fmt(value))
    console.print(table)
    for key in ("by_question", "by_dataset"):
        groups = result.get(key)
        if not groups:
            continue
        columns = list(next(iter(groups.values())))
        sub = Table(title=key.replace("_", " "))
        sub.add_column(key.split("_", 1)[1])
        for column in columns:
            sub.add_column(column, justify="right")
        for name, values in groups.items():
            sub.add_row(name, *(_fmt(values.get(c)) for c in columns))
        console.print(sub)


def _fmt(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4f}"
    return str(value)


@eval_app.command("captioning")
def captioning(
    predictions: Path = typer.Option(None, "--predictions", help="MolT5-format TSV to score: SMILES<TAB>ground truth<TAB>output."),
    model: str = typer.Option(None, "--model", help="Model name or path (load_model) to generate captions with."),
    data: Path = typer.Option(None, "--data", help="ChEBI-20 TSV (CID, SMILES, description) to caption."),
    limit: int = typer.Option(None, "--limit", min=1, help="Only the first N rows of --data."),
    retrieval: str = typer.Option(None, "--retrieval", help=_RETRIEVAL_HELP),
    out: Path = typer.Option(None, "--out", help="Append predictions here (resumes; a temporary file when absent)."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Generation batch size."),
    vocab: Path = typer.Option(None, "--vocab", help=_VOCAB_HELP),
    protocol: str = typer.Option("molt5", "--protocol", help="molt5 (paper, Table 3) or openbiomed-v2."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Score --predictions, or caption --data with --model (or --retrieval only) and score."""
    from biomedgpt.core.errors import InputError
    from biomedgpt.training import evaluate

    if predictions is not None:
        if data is not None or model is not None:
            raise InputError("give either --predictions FILE, or --data with --model/--retrieval only, not both")
        result = evaluate.score_predictions(predictions, vocab=vocab, protocol=protocol)
    else:
        if data is None:
            raise InputError("give --predictions FILE, or --data CHEBI_TSV with --model (or --retrieval only)")
        result = evaluate.eval_captioning(model, data, limit=limit, retrieval=retrieval, out=out,
                                          batch_size=batch_size, vocab=vocab, protocol=protocol)
    _emit(result, as_json, "molecule captioning")


@eval_app.command("protein-qa")
def protein_qa(
    model: str = typer.Option(None, "--model", help="Model name or path (load_model)."),
    data: Path = typer.Option(..., "--data", help="UniProtQA: {accession: {sequence, data}} or a split JSON with sequences.json beside it."),
    sequences: Path = typer.Option(None, "--sequences", help="sequences.json for the split-file layout (default: next to --data)."),
    split: str = typer.Option("all", "--split", help="all, or test/train: one side of the 80/20 accession split "
                              "(seed 0) the shipped protein index uses; test is the honest choice for Swiss-Prot PAIR."),
    limit: int = typer.Option(None, "--limit", min=1, help="Only the first N question/answer pairs."),
    retrieval: str = typer.Option(None, "--retrieval", help=_RETRIEVAL_HELP + " alignment: alignment transfer, "
                                  "the best phmmer homologue's answer to the same question (no model needed)."),
    out: Path = typer.Option(None, "--out", help="Append predictions here (resumes; a temporary file when absent)."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Generation batch size."),
    vocab: Path = typer.Option(None, "--vocab", help=_VOCAB_HELP),
    protocol: str = typer.Option("molt5", "--protocol", help="molt5 or openbiomed-v2 tokenization/BLEU."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Answer protein questions and score: text metrics, exact match, and per question type."""
    from biomedgpt.training import evaluate

    result = evaluate.eval_protein_qa(model, data, limit=limit, retrieval=retrieval, out=out, batch_size=batch_size,
                                      sequences=sequences, split=split, vocab=vocab, protocol=protocol)
    _emit(result, as_json, "protein QA")


@eval_app.command("mcqa")
def mcqa(
    model: str = typer.Option(..., "--model", help="Model name or path (load_model), or a Hugging Face causal-LM "
                              "folder such as the run_dir/model of `biomedgpt train qa`."),
    data: Path = typer.Option(..., "--data", help="MedMCQA JSON/JSONL, PubMedQA ori_pqal.json, or MedQA JSONL."),
    format: str = typer.Option(..., "--format", help="medmcqa, pubmedqa or medqa."),
    method: str = typer.Option("generate", "--method", help="generate (answer extraction) or loglik (option log-likelihood)."),
    limit: int = typer.Option(None, "--limit", min=1, help="Only the first N questions."),
    reduction: str = typer.Option("sum", "--reduction", help="loglik: sum or mean of the option's token log-probs."),
    candidates: str = typer.Option("letters", "--candidates", help="loglik: score the option letters (what the "
                                   "prompt asks for; what `train qa` teaches) or the option texts."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Generation batch size."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Multiple-choice accuracy, overall and per data set."""
    from biomedgpt.training import evaluate

    result = evaluate.eval_mcqa(model, data, format, method=method, limit=limit, batch_size=batch_size,
                                reduction=reduction, candidates=candidates)
    _emit(result, as_json, f"MCQA ({format}, {method})")


@eval_app.command("assistant")
def assistant(
    data: Path = typer.Option(..., "--data", help="JSONL questions with expectations (e.g. agent/data/eval/public.jsonl)."),
    fixtures: Path = typer.Option(None, "--fixtures", help="Serve PubChem/UniProt/E-utilities from this folder's "
                                  "recorded bodies (layout of tests/data) on a loopback server, with an empty HTTP cache."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object: passed, total, by_category, failures."),
    out: Path = typer.Option(None, "--out", help="Write one JSON line per row: id, passed, reason, answer, tools called."),
    limit: int = typer.Option(None, "--limit", min=1, help="Only the first N rows (after --category)."),
    category: str = typer.Option(None, "--category", help="Only the rows of this category."),
) -> None:
    """Ask the assistant every question of --data and score the answers (exit 0 whatever the score)."""
    import sys
    import tempfile
    from contextlib import ExitStack

    from biomedgpt.agent.evaluation import EvalDataError, read_rows, scratch_home, select_rows
    from biomedgpt.core.settings import get_settings

    try:  # usage errors: everything is checked before anything runs
        rows = select_rows(read_rows(data), category, limit)
        if fixtures is not None:
            from biomedgpt.fixtureserver import data_folder

            data_folder(fixtures)
        if out is not None and out.is_dir():
            raise EvalDataError(f"--out {out} is a folder; give a file name")
    except (EvalDataError, FileNotFoundError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None

    with ExitStack() as stack:
        settings = get_settings()
        server = None
        if fixtures is not None:
            from biomedgpt.fixtureserver import fixture_server, service_urls

            server = stack.enter_context(fixture_server(fixtures))
            home = stack.enter_context(tempfile.TemporaryDirectory(prefix="biomedgpt-eval-home-"))
            settings = scratch_home(settings, home).model_copy(update={**service_urls(server), "offline": False})
        sink = None
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            sink = stack.enter_context(out.open("w", encoding="utf-8"))
        report = _run_assistant_eval(rows, settings, sink, show_progress=sys.stderr.isatty())
    if as_json:
        typer.echo(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        _print_assistant_report(report)


def _run_assistant_eval(rows, settings, sink, show_progress: bool):
    import sys

    from biomedgpt.agent.evaluation import evaluate_assistant

    passed = [0]

    def on_result(result) -> None:
        if sink is not None:
            sink.write(json.dumps(result.to_dict(), ensure_ascii=False) + "\n")
            sink.flush()

    def progress(done: int, total: int, result) -> None:
        passed[0] += int(result.passed)
        line = f"eval assistant: {done}/{total} asked, {passed[0]} passed ({result.id})"
        sys.stderr.write("\r" + line[:100].ljust(100))
        if done == total:
            sys.stderr.write("\r" + " " * 100 + "\r")
        sys.stderr.flush()

    return evaluate_assistant(rows, settings=settings, on_result=on_result,
                              progress=progress if show_progress else None)


def _print_assistant_report(report) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"assistant evaluation: {report.passed}/{report.total} passed ({report.seconds:.0f} s)")
    table.add_column("category")
    table.add_column("passed", justify="right")
    table.add_column("total", justify="right")
    table.add_column("rate", justify="right")
    for name, (passed, total) in report.by_category.items():
        table.add_row(name, str(passed), str(total), f"{passed / total:.0%}")
    console.print(table)
    if report.failures:
        console.print(f"[bold]failures ({len(report.failures)})[/bold]")
    for result in report.failures:
        question = " ".join(result.question.split())
        question = question if len(question) <= 70 else question[:69] + "…"
        console.print(f"{result.id} | {question} | {result.reason}", markup=False, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")
