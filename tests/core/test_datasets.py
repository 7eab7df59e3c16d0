"""Data-set readers (``core/datasets.py``): malformed rows are skipped and counted, or with ``strict``
an error naming the file and line; escaped backslashes are un-escaped; the key split is deterministic.

Run: ``.venv/bin/python -m pytest -q tests/core/test_datasets.py``.
"""

from __future__ import annotations

import gzip
import json
import logging

import pytest

from biomedgpt.core.errors import InputError
from biomedgpt.core import datasets as D


def test_chebi20_unescapes_backslashes_and_skips_bad_rows(tmp_path, caplog):
    path = tmp_path / "chebi.tsv"
    path.write_text(
        "CID\tSMILES\tdescription\n"
        "1\tC/C=C\\\\C\tThe molecule is (Z)-but-2-ene.\n"      # file holds C/C=C\\C
        "2\tCCO\n"                                           # a column missing
        "3\tCCO\tThe molecule is ethanol.\textra\n"           # a column too many
        "4\t\tThe molecule is nothing.\n"                    # empty SMILES
        "\n"                                                 # blank line: not a row
        '5\tC"C\tThe molecule is "quoted".\n'                # quotes are literal (QUOTE_NONE)
    )
    stats = D.ReadStats()
    with caplog.at_level(logging.WARNING, logger="biomedgpt.core.datasets"):
        records = list(D.read_chebi20(path, stats=stats))
    assert [r.cid for r in records] == ["1", "5"]
    assert records[0].smiles == "C/C=C\\C"  # one backslash
    assert records[1].description == 'The molecule is "quoted".'
    assert (stats.read, stats.skipped) == (2, 3)
    assert sum(stats.reasons.values()) == 3
    assert "3 malformed rows skipped" in caplog.text and str(path) in caplog.text


def test_chebi20_wrong_file_is_an_input_error(tmp_path):
    path = tmp_path / "other.tsv"
    path.write_text("a\tb\n1\t2\n")
    with pytest.raises(InputError, match="lacks CID, SMILES, description"):
        list(D.read_chebi20(path))
    with pytest.raises(InputError, match="no such file"):
        list(D.read_chebi20(tmp_path / "missing.tsv"))


def test_chebi20_strict_names_the_line_and_reads_gzip(tmp_path):
    path = tmp_path / "x.tsv.gz"
    path.write_bytes(gzip.compress(b"a\tb\n1\t2\n"))
    with pytest.raises(InputError, match="lacks CID, SMILES, description"):
        list(D.read_chebi20(path, strict=True))
    good = tmp_path / "good.tsv.gz"
    good.write_bytes(gzip.compress(b"CID\tSMILES\tdescription\n1\tCCO\tethanol\n"))
    assert [r.cid for r in D.read_chebi20(good, strict=True)] == ["1"]
    bad_row = tmp_path / "bad.tsv"
    bad_row.write_text("CID\tSMILES\tdescription\n1\tCCO\tethanol\n2\tCC\n")
    with pytest.raises(InputError, match="line 3: 2 columns instead of 3"):
        list(D.read_chebi20(bad_row, strict=True))  # strict: a reference index holds exactly its file's rows
    stats = D.ReadStats()
    assert [r.cid for r in D.read_chebi20(bad_row, stats=stats)] == ["1"] and stats.skipped == 1


def test_json_readers_are_strict_on_request(tmp_path):
    path = tmp_path / "dev.jsonl"
    path.write_text(json.dumps({"id": "u1", "question": "Q?", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": 1})
                    + "\n" + json.dumps({"id": "u2", "question": "Q?"}) + "\n")
    assert len(list(D.read_medmcqa(path))) == 1
    with pytest.raises(InputError, match="missing question, options or a valid answer"):
        list(D.read_mcqa(path, "medmcqa", strict=True))


def test_swissprot_pair_rows_become_readable_descriptions(tmp_path):
    path = tmp_path / "pair.csv"
    path.write_text(
        ",pid,seq,pfam_domain,family,EC,names\n"
        "0,P1,['MKVL'],['kinase domain'],['belongs to the kinase family.'],['2.7.11.1'],"
        "['Recommended name: Serine kinase 1; Short: SK1']\n"
        "1,P2,not a list,,,,\n"
        "2,P3,['MAA'],,,,\n"
    )
    stats = D.ReadStats()
    records = list(D.read_swissprot_pair(path, stats=stats))
    assert [r.accession for r in records] == ["P1", "P3"] and stats.skipped == 1
    first = records[0]
    assert (first.sequence, first.name) == ("MKVL", "Serine kinase 1")
    assert first.description == ("Serine kinase 1. Belongs to the kinase family. Pfam domains: kinase domain. "
                                 "EC 2.7.11.1.")
    with pytest.raises(InputError, match="line 3: not a PAIR Swiss-Prot row"):
        list(D.read_swissprot_pair(path, strict=True))


def test_shipped_sample_keeps_rdkit_valid_smiles():
    from rdkit import Chem

    records = list(D.read_chebi20("tests/data/eval/chebi20_sample.tsv"))
    assert len(records) == 6
    escaped = [r for r in records if r.cid == "52929771"][0]
    assert "\\\\" not in escaped.smiles and "C=C\\O" in escaped.smiles
    assert all(Chem.MolFromSmiles(r.smiles) is not None for r in records)


def test_pubchemqa_records_columnar_and_bad_rows(tmp_path):
    path = tmp_path / "pubchemqa.json"
    path.write_text(json.dumps([
        {"smiles": ["CCO"], "question": "What is it?", "answer": "Ethanol.", "cid": 702},
        {"smiles": ["[Na+]", "[Cl-]"], "question": "What is it?", "answer": "Salt."},
        {"smiles": [], "question": "q", "answer": "a"},
        {"smiles": ["CCO"], "question": "", "answer": "a"},
        "not an object",
    ]))
    stats = D.ReadStats()
    records = list(D.read_pubchemqa(path, stats=stats))
    assert [r.smiles for r in records] == ["CCO", "[Na+].[Cl-]"]
    assert records[0].cid == "702"
    assert stats.skipped == 3
    columnar = tmp_path / "columnar.json"
    columnar.write_text(json.dumps({"smiles": ["CCO", "C"], "question": ["q1", "q2"], "answer": ["a1", "a2"]}))
    assert [(r.smiles, r.answer) for r in D.read_pubchemqa(columnar)] == [("CCO", "a1"), ("C", "a2")]


def test_uniprotqa_accession_keyed_layout(tmp_path):
    path = tmp_path / "qa.json"
    path.write_text(json.dumps({
        "P1": {"sequence": "MKT LLV", "data": [["What are the official names of this protein?", "Kinase 1"],
                                                  ["What is the function of this protein?", "Phosphorylates."],
                                                  ["only a question"]]},
        "P2": {"sequence": "NOT A SEQ 123", "data": [["q", "a"]]},
        "P3": {"sequence": "MKV", "data": [["What is the subcellular location of this protein?", "Nucleus."],
                                           ["What is the protein family that this protein belongs to?", "Kinases."]]},
    }, indent=1))
    stats = D.ReadStats()
    records = list(D.read_uniprotqa(path, stats=stats))
    assert [(r.accession, r.question_type) for r in records] == [
        ("P1", "name"), ("P1", "function"), ("P3", "location"), ("P3", "family")]
    assert records[0].sequence == "MKTLLV"
    assert stats.skipped == 2  # the one-element pair, and P2's invalid sequence


def test_uniprotqa_split_layout_with_sequences_json(tmp_path):
    (tmp_path / "sequences.json").write_text(json.dumps({"P1": "MKTLLV", "P2": "MAA"}))
    split = tmp_path / "test.json"
    split.write_text("\n".join(json.dumps(r) for r in [
        {"protein_accession": "P1", "question": "What is the function of this protein?", "answer": "Binds ATP."},
        {"protein_accession": "P9", "question": "What is the function of this protein?", "answer": "Unknown."},
        {"protein_accession": "P2", "question": "What is the protein family?", "answer": "AA family."},
    ]) + "\n{broken json\n")
    stats = D.ReadStats()
    records = list(D.read_uniprotqa(split, stats=stats))  # sequences.json found next to the split file
    assert [(r.accession, r.sequence, r.question_type) for r in records] == [("P1", "MKTLLV", "function"),
                                                                            ("P2", "MAA", "family")]
    assert stats.skipped == 2 and stats.reasons["line is not JSON"] == 1
    lone = tmp_path / "alone" / "split.json"
    lone.parent.mkdir()
    lone.write_text(json.dumps([{"protein_accession": "P1", "question": "q", "answer": "a"}]))
    with pytest.raises(InputError, match="sequences.json"):
        list(D.read_uniprotqa(lone))


def test_uniprotqa_shared_derived_file_layout():
    records = list(D.read_uniprotqa("tests/data/eval/uniprotqa_sample.json"))
    assert {r.question_type for r in records} == {"name", "family"}
    assert all(r.sequence.isalpha() for r in records)


def test_medmcqa_both_layouts(tmp_path):
    official = tmp_path / "dev.json"
    official.write_text("\n".join(json.dumps(r) for r in [
        {"id": "u1", "question": "Q1?", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": 3, "choice_type": "single"},
        {"id": "u2", "question": "Q2?", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": 9},
        {"id": "u3", "question": "Q3?", "opa": "a", "opb": None, "opc": "c", "opd": "d", "cop": 1},
    ]))
    stats = D.ReadStats()
    records = list(D.read_medmcqa(official, stats=stats))
    assert [(r.id, r.answer, r.options["C"]) for r in records] == [("u1", "C", "c")]
    assert stats.skipped == 2
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"question": "Q?", "realidx": "x", "options": {"A": "1", "B": "2"}, "answer_idx": "B",
                                 "answer": "2"}) + "\n")
    (record,) = D.read_mcqa(bench, "medmcqa")
    assert (record.id, record.answer, record.dataset) == ("x", "B", "medmcqa")


def test_medqa_and_pubmedqa(tmp_path):
    medqa = tmp_path / "test.jsonl"
    medqa.write_text("\n".join([
        json.dumps({"realidx": 0, "question": "Q?", "options": {"A": "x", "B": "y"}, "answer": "y", "answer_idx": "B"}),
        json.dumps({"realidx": 1, "question": "Q?", "options": {"A": "x", "B": "y"}, "answer": "y"}),  # no letter
        json.dumps({"realidx": 2, "question": "Q?", "options": {"A": "x"}, "answer_idx": "D"}),
    ]))
    stats = D.ReadStats()
    assert [(r.id, r.answer) for r in D.read_medqa(medqa, stats=stats)] == [("0", "B"), ("1", "B")]
    assert stats.skipped == 1
    pqal = tmp_path / "ori_pqal.json"
    pqal.write_text(json.dumps({
        "11": {"QUESTION": "Does X cause Y?", "CONTEXTS": ["Part one.", "Part two."], "final_decision": "yes"},
        "12": {"QUESTION": "Is Z safe?", "CONTEXTS": ["Text."], "final_decision": "no"},
        "13": {"QUESTION": "", "final_decision": "maybe"},
        "14": {"QUESTION": "Odd?", "final_decision": "perhaps"},
    }, indent=4))
    stats = D.ReadStats()
    records = list(D.read_pubmedqa(pqal, stats=stats))
    assert [(r.id, r.answer) for r in records] == [("11", "yes"), ("12", "no")]
    assert records[0].context == "Part one. Part two." and records[0].options == ["yes", "no", "maybe"]
    assert stats.skipped == 2
    (tmp_path / "test_ground_truth.json").write_text(json.dumps({"12": "no"}))
    assert [r.id for r in D.read_mcqa(pqal, "pubmedqa")] == ["12"]  # the official test split only
    with pytest.raises(InputError, match="not one of"):
        D.read_mcqa(pqal, "usmle")


def test_text_corpus_jsonl_and_plain(tmp_path):
    jsonl = tmp_path / "corpus.jsonl"
    jsonl.write_text('{"text": "First document."}\nnot json\n{"title": "T", "abstract": "Abstract.", "pmid": "9"}\n'
                     '{"other": 1}\n')
    stats = D.ReadStats()
    records = list(D.read_text_corpus(jsonl, stats=stats))
    assert [(r.text, r.id) for r in records] == [("First document.", None), ("T Abstract.", "9")]
    assert stats.skipped == 2
    plain = tmp_path / "corpus.txt"
    plain.write_text("Para one\ncontinues.\n\n\nPara two.\n")
    assert [r.text for r in D.read_text_corpus(plain)] == ["Para one continues.", "Para two."]


def test_split_accessions_is_deterministic_and_order_free():
    accessions = [f"A{i:04d}" for i in range(100)]
    train, test = D.split_accessions(accessions)
    assert len(test) == 20 and len(train) == 80 and not set(train) & set(test)
    assert D.split_accessions(list(reversed(accessions)) + accessions[:5]) == (train, test)
    assert D.split_accessions(accessions, seed=1)[1] != test
    with pytest.raises(InputError, match="test_fraction"):
        D.split_accessions(accessions, test_fraction=1.5)


def test_split_by_key_is_the_retrieval_split():
    split_accessions = D.split_accessions
    records = [D.ProteinQA(f"P{i % 10}", "MK", f"q{i}", "a", "other") for i in range(30)]
    train, test = split_by = D.split_by_key(records, "accession", test_fraction=0.2, seed=0)
    assert len(train) + len(test) == 30
    assert not {r.accession for r in train} & {r.accession for r in test}
    assert sorted({r.accession for r in test}) == split_accessions([r.accession for r in records], 0.2, 0)[1]
    assert D.split_by_key(reversed(records), "accession")[1] == [r for r in reversed(records) if r in test]
    assert split_by == D.split_by_key(records, lambda r: r.accession)
