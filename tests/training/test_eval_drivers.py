"""Evaluation drivers and the ``biomedgpt eval`` commands: resuming, retrieval baseline, MCQA rules, log-likelihood.

Run: ``.venv/bin/python -m pytest -q tests/training/test_eval_drivers.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from biomedgpt.cli import app
from biomedgpt.model.prompts import default_index
from biomedgpt.training import evaluate as E
from biomedgpt.training.eval_structures import _caption_batch
from biomedgpt.core.datasets import MCQARecord, read_chebi20

SAMPLE = Path("tests/data/eval/chebi20_sample.tsv")
PROTEINS = Path("tests/data/eval/uniprotqa_sample.json")
runner = CliRunner()


def _rows(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines()]


def _invoke(*args: str):
    return runner.invoke(app, list(args))


# ----------------------------------------------------------------------------------- captioning
def test_eval_captioning_resumes_a_partial_out(tmp_path):
    full = tmp_path / "full.tsv"
    result = _invoke("eval", "captioning", "--data", str(SAMPLE), "--retrieval", "only", "--limit", "5",
                     "--out", str(full), "--json")
    assert result.exit_code == 0, result.output
    first = json.loads(result.stdout.strip().splitlines()[-1])
    assert first["n"] == 5 and first["generated"] == 5 and first["retrieval"] == "only"
    assert set(E.TEXT_KEYS) <= set(first)
    rows = _rows(full)
    assert rows[0] == ["SMILES", "ground truth", "output"] and len(rows) == 6

    # Simulate a kill: two complete rows survive plus half of the third one (no newline).
    partial = tmp_path / "partial.tsv"
    lines = full.read_text().splitlines(keepends=True)
    partial.write_text("".join(lines[:3]) + lines[3][:40])
    result = _invoke("eval", "captioning", "--data", str(SAMPLE), "--retrieval", "only", "--limit", "5",
                     "--out", str(partial), "--json")
    assert result.exit_code == 0, result.output
    resumed = json.loads(result.stdout.strip().splitlines()[-1])
    assert resumed["generated"] == 3  # rows 3-5 only; the torn row was dropped and redone
    assert partial.read_text() == full.read_text()
    assert {k: resumed[k] for k in E.TEXT_KEYS} == {k: first[k] for k in E.TEXT_KEYS}

    # Running again is idempotent: nothing generated, nothing appended.
    again = E.eval_captioning(None, SAMPLE, limit=5, retrieval="only", out=partial, progress=False)
    assert again["generated"] == 0 and partial.read_text() == full.read_text()


def test_retrieval_only_leaves_self_out():
    records = list(read_chebi20(SAMPLE))
    index = default_index("molecule")
    # The last two sample rows are ChEBI-20 validation molecules, i.e. inside the shipped index:
    # their own description must never come back.
    for record in records[-2:]:
        (output,) = _caption_batch(None, [record], "only", index)
        assert output and output != record.description


def test_scoring_a_predictions_file_matches_the_metrics(tmp_path):
    preds = tmp_path / "preds.tsv"
    preds.write_text("SMILES\tground truth\toutput\n"
                     "CCO\tThe molecule is an acid.\tThe molecule is an acid.\n"
                     "C\tThe molecule is a base.\tThe molecule is a sugar.\n")
    result = _invoke("eval", "captioning", "--predictions", str(preds), "--json")
    assert result.exit_code == 0, result.output
    scored = json.loads(result.stdout)
    expected = E.caption_metrics(["The molecule is an acid.", "The molecule is a base."],
                                 ["The molecule is an acid.", "The molecule is a sugar."])
    assert scored == expected
    table = _invoke("eval", "captioning", "--predictions", str(preds))
    assert table.exit_code == 0 and "bleu2" in table.stdout and "rougeL" in table.stdout


def test_eval_errors_are_one_line(tmp_path):
    missing = _invoke("eval", "captioning", "--predictions", str(tmp_path / "nope.tsv"))
    assert missing.exit_code == 1 and "nope.tsv" in missing.output and "Traceback" not in missing.output
    bad = tmp_path / "bad.tsv"
    bad.write_text("a\tb\n1\t2\n")
    wrong = _invoke("eval", "captioning", "--predictions", str(bad))
    assert wrong.exit_code == 1 and "ground truth" in wrong.output
    no_model = _invoke("eval", "captioning", "--data", str(SAMPLE))
    assert no_model.exit_code == 1 and "--retrieval only" in no_model.output
    mode = _invoke("eval", "captioning", "--data", str(SAMPLE), "--retrieval", "sometimes")
    assert mode.exit_code == 1 and "sometimes" in mode.output
    other = tmp_path / "other.tsv"
    other.write_text("x\ty\n")
    clash = _invoke("eval", "captioning", "--data", str(SAMPLE), "--retrieval", "only", "--out", str(other))
    assert clash.exit_code == 1 and "another --out" in clash.output


def test_protein_qa_retrieval_only_json_keys(tmp_path):
    out = tmp_path / "protein.tsv"
    result = _invoke("eval", "protein-qa", "--data", str(PROTEINS), "--retrieval", "only", "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert payload["n"] == 5 and "exact_match" in payload
    assert set(payload["by_question"]) == {"name", "family"}
    assert sum(v["n"] for v in payload["by_question"].values()) == 5
    assert _rows(out)[0] == list(E.PROTEIN_HEADER)
    # --split test keeps the held-out side of the 80/20 accession split (seed 0): of the 3 sample
    # proteins, round(0.6) = 1 accession, with all of its question/answer pairs.
    from biomedgpt.core.datasets import split_accessions
    from biomedgpt.core.datasets import read_uniprotqa

    records = list(read_uniprotqa(PROTEINS))
    (held_out,) = split_accessions([r.accession for r in records], 0.2, 0)[1]
    test_side = E.eval_protein_qa(None, PROTEINS, retrieval="only", split="test", progress=False)
    assert test_side["n"] == sum(r.accession == held_out for r in records)
    assert {row[0] for row in _rows(Path(test_side["out"]))[1:]} == {held_out}


def test_help_exits_zero():
    for command in ("captioning", "protein-qa", "mcqa"):
        result = _invoke("eval", command, "--help")
        assert result.exit_code == 0, result.output
        assert "--json" in result.output


# -------------------------------------------------------------------------------- a real model
@pytest.fixture(scope="module")
def tiny_model():
    from biomedgpt.model import load_model

    return load_model("tiny")


def test_generation_with_the_tiny_model(tiny_model, tmp_path):
    out = tmp_path / "gen.tsv"
    result = E.eval_captioning(tiny_model, SAMPLE, limit=3, retrieval="on", out=out, batch_size=2, progress=False)
    assert result["n"] == 3 and result["generated"] == 3 and result["retrieval"] == "on"
    assert len(_rows(out)) == 4 and all(len(r) == 3 for r in _rows(out))
    assert E.default_retrieval(tiny_model) == "off"  # the tiny preset was not trained with retrieval
    # A SMILES RDKit rejects gets an empty prediction and is still scored; the rest of the batch runs.
    bad = tmp_path / "bad_smiles.tsv"
    lines = SAMPLE.read_text().splitlines()
    bad.write_text("\n".join([lines[0], "1\tC1CC(\tThe molecule is broken.", *lines[1:3]]) + "\n")
    broken = E.eval_captioning(tiny_model, bad, retrieval="off", out=tmp_path / "bad.tsv", batch_size=3, progress=False)
    assert broken["n"] == 3
    assert _rows(tmp_path / "bad.tsv")[1][2] == "" and all(r[2] for r in _rows(tmp_path / "bad.tsv")[2:])
    mcqa = tmp_path / "medqa.jsonl"
    mcqa.write_text("\n".join(json.dumps({"realidx": i, "question": f"Which {i}?", "options": {"A": "x", "B": "y"},
                                          "answer_idx": "AB"[i % 2]}) for i in range(3)))
    scored = E.eval_mcqa(tiny_model, mcqa, "medqa", method="generate", batch_size=2, progress=False)
    assert scored["n"] == 3 and set(scored["by_dataset"]) == {"medqa"}
    assert 0 <= scored["unanswered"] <= 3
    loglik = E.eval_mcqa(tiny_model, mcqa, "medqa", method="loglik", progress=False)
    assert loglik["n"] == 3 and loglik["unanswered"] == 0


# -------------------------------------------------------------------------------------- MCQA
@pytest.mark.parametrize(("text", "expected"), [
    ("B", "B"),
    ("(C) heparin", "C"),
    ("D. Warfarin", "D"),
    ("The answer is D.", "D"),
    ("Answer: (A)", "A"),
    ("I would give heparin here.", "C"),           # rule 3: the text of exactly one option
    ("A patient like this needs ibuprofen", "B"),  # "A" + lower-case word is the article, not option A
    ("Either aspirin or heparin", None),           # two option texts: no choice
    ("E", None),                                   # not an option of this question
    ("", None),
])
def test_letter_extraction_rules(text, expected):
    options = {"A": "Aspirin", "B": "Ibuprofen", "C": "Heparin", "D": "Warfarin"}
    assert E.extract_choice(text, options) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Yes, it does.", "yes"),
    ("The answer is maybe. No trial has shown it.", "maybe"),
    ("NO.", "no"),
    ("Unclear from the abstract.", None),
])
def test_yes_no_maybe_extraction(text, expected):
    assert E.extract_choice(text, ["yes", "no", "maybe"]) == expected


def test_accuracy_overall_and_per_dataset():
    result = E.mcqa_accuracy(["A", "B", "yes", "no"], ["A", None, "yes", "maybe"],
                             ["medqa", "medqa", "pubmedqa", "pubmedqa"])
    assert result["n"] == 4 and result["accuracy"] == 0.5
    assert result["by_dataset"] == {"medqa": {"n": 2, "accuracy": 0.5}, "pubmedqa": {"n": 2, "accuracy": 0.5}}


# ------------------------------------------------------------------------- log-likelihood scoring
WORDS = ["<pad>", "<s>", "</s>", "<unk>", "question", "is", "it", "safe", "answer", "yes", "no", "maybe", "very",
         "much", "so", "x", "y"]


@pytest.fixture(scope="module")
def tiny_llama():
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>",
                                        pad_token="<pad>", unk_token="<unk>")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(WORDS), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         pad_token_id=0, bos_token_id=1, eos_token_id=2)
    return LlamaForCausalLM(config).eval(), tokenizer


def test_option_logprobs_equal_unpadded_scoring(tiny_llama):
    import torch

    model, tokenizer = tiny_llama
    prompt = "question is it safe answer"
    options = ["yes", "very much so", "no"]
    summed = E.option_logprobs(model, tokenizer, prompt, options, reduction="sum")
    mean = E.option_logprobs(model, tokenizer, prompt, options, reduction="mean")
    for option, s, m in zip(options, summed, mean):
        prompt_ids = tokenizer(prompt)["input_ids"]
        option_ids = tokenizer(" " + option, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prompt_ids + option_ids])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0], dim=-1)
        expected = sum(float(logp[len(prompt_ids) + j - 1, t]) for j, t in enumerate(option_ids))
        assert s == pytest.approx(expected, abs=1e-4)
        assert m == pytest.approx(expected / len(option_ids), abs=1e-4)
    assert summed[1] != pytest.approx(mean[1])  # three tokens: sum and mean differ


def test_loglik_picks_the_option_the_model_learned(tiny_llama, tmp_path):
    import copy

    import torch

    base, tokenizer = tiny_llama
    model = copy.deepcopy(base).train()
    prompt = E.mcqa_prompt(MCQARecord("1", "is it safe", ["yes", "no", "maybe"], "maybe", "pubmedqa"))
    prompt_ids = tokenizer(prompt)["input_ids"]
    ids = torch.tensor([prompt_ids + tokenizer(" maybe </s>", add_special_tokens=False)["input_ids"]])
    labels = ids.clone()
    labels[0, : len(prompt_ids)] = -100  # the loss covers the answer and EOS only, as `train qa` does
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(15):
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    assert E.choose_by_loglik(model, tokenizer, prompt, ["yes", "no", "maybe"]) == "maybe"
    pqal = tmp_path / "ori_pqal.json"
    pqal.write_text(json.dumps({str(i): {"QUESTION": "is it safe", "final_decision": label}
                                for i, label in enumerate(["maybe", "yes", "maybe", "no"])}))
    result = E.eval_mcqa((model, tokenizer), pqal, "pubmedqa", method="loglik", progress=False)
    assert result["n"] == 4 and result["accuracy"] == 0.5  # it answers "maybe" to the same question
    # The same through the command, from a Hugging Face folder (what `biomedgpt train qa` writes).
    folder = tmp_path / "qa_model"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    cli = _invoke("eval", "mcqa", "--model", str(folder), "--data", str(pqal), "--format", "pubmedqa",
                  "--method", "loglik", "--json")
    assert cli.exit_code == 0, cli.output
    payload = json.loads(cli.stdout.strip().splitlines()[-1])
    assert (payload["n"], payload["accuracy"]) == (4, 0.5)
    assert payload["by_dataset"] == {"pubmedqa": {"n": 4, "accuracy": 0.5}}
    generated = E.eval_mcqa(str(folder), pqal, "pubmedqa", method="generate", progress=False)
    assert generated["n"] == 4 and generated["accuracy"] == 0.5  # greedy decoding also says "maybe"


def test_an_evaluation_holds_every_row_it_scores_out_of_the_reference(tmp_path, monkeypatch):
    """The shipped reference holds every ChEBI-20 row: an evaluation leaves out the rows it scores (and their
    molecules under other CIDs), so each row sees the reference training could see."""
    from biomedgpt.model import prompts
    from biomedgpt.model.retrieval import MoleculeIndex

    index = MoleculeIndex.build([("1", "CCCCO", "Butanol."), ("2", "CCCCCO", "Pentanol."),
                                 ("3", "CCCCCCCCCCO", "Decanol."), ("4", "OCCCC", "Butanol under another CID.")])
    monkeypatch.setattr(prompts, "default_molecule_index", lambda: index)
    data = tmp_path / "slice.tsv"
    data.write_text("CID\tSMILES\tdescription\n1\tCCCCO\tButanol.\n2\tCCCCCO\tPentanol.\n")
    both = E.eval_captioning(None, data, retrieval="only", out=tmp_path / "both.tsv", progress=False)
    assert [r[2] for r in _rows(tmp_path / "both.tsv")[1:]] == ["Decanol.", "Decanol."]
    assert both["reference_rows"] == 1
    first = E.eval_captioning(None, data, limit=1, retrieval="only", out=tmp_path / "first.tsv", progress=False)
    assert [r[2] for r in _rows(tmp_path / "first.tsv")[1:]] == ["Pentanol."]  # a row not scored is a reference
    assert first["reference_rows"] == 2
