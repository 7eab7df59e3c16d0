"""Splicing, masks, loss and generation of BioMedGPT on the tiny preset (random weights, exact checks)."""

from __future__ import annotations

import pytest
import torch
from rdkit import Chem

from biomedgpt.model.biomedgpt import IGNORE_INDEX
from biomedgpt.model.conversation import chat_prompt
from biomedgpt.core.errors import InputError, InvalidSequenceError, InvalidSmilesError
from biomedgpt.model.molecule import featurize_smiles

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
CAFFEINE = "CN1C=NC2=C1C(=O)N(C(=O)N2C)C"
PEPTIDE = "MKTAYIAKQR"


@torch.no_grad()
def test_molecule_positions_are_proj_mol_of_atom_features_one_per_heavy_atom(tiny_model):
    prompt = chat_prompt("Compare them.", molecules=2)
    batch = tiny_model.splice(prompt, [ASPIRIN, CAFFEINE])
    spans = batch.spans[0]
    assert [kind for kind, _, _ in spans] == ["molecule", "molecule"]
    for (_, start, end), smiles in zip(spans, [ASPIRIN, CAFFEINE]):
        assert end - start == Chem.MolFromSmiles(smiles).GetNumHeavyAtoms()
        atoms = tiny_model.mol_structure_encoder.encode(featurize_smiles(smiles))
        assert torch.allclose(batch.inputs_embeds[0, start:end], tiny_model.proj_mol(atoms), atol=1e-6)
    # text around the placeholders is ordinary token embeddings; only the first segment has BOS
    embed = tiny_model.llm.get_input_embeddings().weight
    assert torch.equal(batch.inputs_embeds[0, 0], embed[tiny_model.tokenizer.bos_token_id])
    bos_rows = (batch.inputs_embeds[0] == embed[tiny_model.tokenizer.bos_token_id]).all(-1)
    assert bos_rows.sum() == 1


@torch.no_grad()
def test_protein_takes_length_plus_two_positions(tiny_model):
    batch = tiny_model.splice(chat_prompt("What is it?", proteins=1), None, [PEPTIDE.lower()])
    (kind, start, end), = batch.spans[0]
    assert kind == "protein" and end - start == len(PEPTIDE) + 2
    feats, mask = tiny_model.prot_structure_encoder.encode([PEPTIDE])
    assert torch.allclose(batch.inputs_embeds[0, start:end], tiny_model.proj_prot(feats[0][mask[0]]), atol=1e-6)


@torch.no_grad()
@pytest.mark.parametrize("side", ["left", "right"])
def test_mixed_batch_padding_masks_and_logits_match_single_prompts(tiny_model, side):
    prompts = [chat_prompt("What is it?", molecules=1), chat_prompt("What is it?", proteins=1), chat_prompt("Hello")]
    mols, prots = [[ASPIRIN], None, None], [None, [PEPTIDE], None]
    batch = tiny_model.splice(prompts, mols, prots, padding_side=side)
    width = batch.inputs_embeds.shape[1]
    for i, prompt in enumerate(prompts):
        single = tiny_model.splice(prompt, mols[i] or None, prots[i] or None)
        n = single.inputs_embeds.shape[1]
        real = slice(width - n, width) if side == "left" else slice(0, n)
        pad = slice(0, width - n) if side == "left" else slice(n, width)
        assert batch.attention_mask[i].sum() == n
        assert batch.attention_mask[i, real].all() and not batch.attention_mask[i, pad].any()
        assert torch.equal(batch.position_ids[i, real], torch.arange(n))
        assert torch.allclose(batch.inputs_embeds[i, real], single.inputs_embeds[0], atol=1e-6)
        together = tiny_model.llm(inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask,
                                  position_ids=batch.position_ids).logits[i, real]
        alone = tiny_model.llm(inputs_embeds=single.inputs_embeds).logits[0]
        assert torch.allclose(together, alone, atol=1e-4)


@torch.no_grad()
def test_loss_covers_only_answer_tokens_and_eos(tiny_model):
    prompts = [chat_prompt("What is it?", molecules=1), chat_prompt("Which protein?", proteins=1)]
    answers = ["It is aspirin.", "A kinase"]
    batch = tiny_model.splice(prompts, [[ASPIRIN], None], [None, [PEPTIDE]], answers)
    assert batch.padding_side == "right"
    tok = tiny_model.tokenizer
    for i, answer in enumerate(answers):
        labelled = batch.labels[i][batch.labels[i] != IGNORE_INDEX].tolist()
        assert labelled == tok(answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        positions = (batch.labels[i] != IGNORE_INDEX).nonzero().flatten()
        assert positions[-1] == batch.attention_mask[i].sum() - 1  # EOS is the last real position
    out = tiny_model(prompts, [[ASPIRIN], None], [None, [PEPTIDE]], answers)
    logits = out.logits[:, :-1].reshape(-1, out.logits.shape[-1])
    targets = batch.labels[:, 1:].reshape(-1)
    manual = torch.nn.functional.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX)
    assert torch.allclose(out.loss, manual, atol=1e-5)


@torch.no_grad()
def test_greedy_generate_equals_a_hand_written_loop(tiny_model):
    from biomedgpt.core.settings import Settings, use_settings

    prompt = chat_prompt("Describe it.", molecules=1)
    with use_settings(Settings(lm_weights="fp32")):  # int8 weights (the CPU default) round the logits
        generated = tiny_model.generate_ids(prompt, CAFFEINE, max_new_tokens=6)[0].tolist()
    assert len(generated) >= 1
    batch = tiny_model.splice(prompt, CAFFEINE)
    embeds = batch.inputs_embeds
    embed = tiny_model.llm.get_input_embeddings()
    expected = []
    for _ in range(len(generated)):
        logits = tiny_model.llm(inputs_embeds=embeds).logits[0, -1]
        token = int(logits.argmax())
        expected.append(token)
        if token == tiny_model.tokenizer.eos_token_id:
            break
        embeds = torch.cat([embeds, embed(torch.tensor([[token]]))], dim=1)
    assert generated[: len(expected)] == expected


@torch.no_grad()
def test_left_padded_batch_generation_equals_one_by_one(tiny_model):
    prompts = [chat_prompt("What is it?", molecules=1), chat_prompt("Hi")]
    together = tiny_model.generate_ids(prompts, [[ASPIRIN], None], max_new_tokens=4)
    for i, (prompt, mols) in enumerate(zip(prompts, [[ASPIRIN], None])):
        alone = tiny_model.generate_ids(prompt, mols, max_new_tokens=4)[0]
        assert together[i, : len(alone)].tolist() == alone.tolist()


def test_ask_returns_text_and_bad_inputs_raise_documented_errors(tiny_model):
    assert isinstance(tiny_model.ask("What is it?", smiles=ASPIRIN, max_new_tokens=3), str)
    with pytest.raises(InvalidSmilesError, match="C1CC"):
        tiny_model.ask("What is it?", smiles="C1CC")
    with pytest.raises(InvalidSequenceError, match=r"'1' at position 5"):
        tiny_model.ask("What is it?", sequence="MKTA1YI")
    with pytest.raises(InputError, match="1 <moleculeHere>.*0 molecule"):
        tiny_model.splice(chat_prompt("x", molecules=1), None)
    with pytest.raises(InputError, match="empty"):
        tiny_model.ask("  ")


@torch.no_grad()
def test_too_long_protein_is_truncated_or_refused(tiny_model):
    long = "M" + "A" * 299
    with pytest.warns(UserWarning, match="126"):
        batch = tiny_model.splice(chat_prompt("x", proteins=1), None, [long])
    (_, start, end), = batch.spans[0]
    assert end - start == tiny_model.config.max_protein_tokens
    strict = tiny_model.config.replace(on_too_long="error")
    original = tiny_model.config
    tiny_model.config = strict
    try:
        with pytest.raises(InvalidSequenceError):
            tiny_model.splice(chat_prompt("x", proteins=1), None, [long])
    finally:
        tiny_model.config = original
