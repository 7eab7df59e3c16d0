"""The BioMedGPT model: GIN + ESM-2 features spliced into a Llama LM. ``model.ask("What is it?", smiles="CCO")``.

Usage::

    from biomedgpt.model import load_model
    model = load_model("mini")                       # or "tiny", or a folder saved by save_pretrained
    model.ask("What is this molecule?", smiles="CC(=O)Oc1ccccc1C(=O)O")
    out = model(prompts, molecules, proteins, answers)  # training: out.loss on answer tokens + EOS only
    texts = model.generate(prompts, molecules, proteins, max_new_tokens=32)

Why written fresh: the released ``BioMedGPTV._prompt_wrap`` indexes features with ``mol_feats.where[...]``
and builds the attention mask from the last sample only. Here each prompt is split at
``<moleculeHere>`` / ``<proteinHere>``; every text segment is tokenized on its own (only the first gets
BOS); each molecule placeholder becomes one embedding per heavy atom (``proj_mol`` of the GIN atom
features) and each protein placeholder one per ESM-2 token (L + 2 positions incl. BOS/EOS,
``proj_prot``). Batches are RIGHT-padded for training (``forward``) and LEFT-padded for generation,
with an attention mask that is 0 exactly on padding and position ids that skip the padding.

Attribute names (``mol_structure_encoder``, ``prot_structure_encoder``, ``llm``, ``proj_mol``,
``proj_prot``) equal the official checkpoint's key prefixes, so its state dict loads with no renaming.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import Tensor, nn

from biomedgpt.model.config import BioMedGPTConfig, MoleculeEncoderConfig, ProteinEncoderConfig
from biomedgpt.model.conversation import MOLECULE_PLACEHOLDER, PROTEIN_PLACEHOLDER, SEPARATOR, conversation_prompt
from biomedgpt.core.cancel import check_cancelled
from biomedgpt.core.errors import ConfigError, InputError
from biomedgpt.model.generation import REPEAT_STOP_NGRAM, REPEAT_STOP_TIMES, Decoding, Generated, LeanLlama, greedy
from biomedgpt.model.lm import ensure_pad_token
from biomedgpt.model.prompts import model_structure_prompt, retrieval_context
from biomedgpt.model.quantize import resolve_weight_format

IGNORE_INDEX = -100
#: The generation options ``generate_rows`` takes besides ``max_new_tokens``: ``Decoding``'s other fields.
_DECODING_FIELDS = {option.name for option in fields(Decoding)} - {"max_new_tokens"}
_PLACEHOLDER = re.compile(f"({re.escape(MOLECULE_PLACEHOLDER)}|{re.escape(PROTEIN_PLACEHOLDER)})")


def build_molecule_encoder(config: MoleculeEncoderConfig) -> nn.Module:
    """A fresh GraphMVP GIN with ``config``'s sizes."""
    from biomedgpt.model.molecule import GINEncoder  # deferred: torch_geometric

    return GINEncoder(num_layer=config.num_layer, emb_dim=config.emb_dim, drop_ratio=config.drop_ratio, JK=config.JK)


def build_protein_encoder(config: ProteinEncoderConfig) -> nn.Module:
    """A fresh ESM-2 (HF ``EsmModel`` or fair-esm ``ESM2``) with ``config``'s sizes."""
    from biomedgpt.model.protein import FairEsmEncoder, HFEsmEncoder, esm_alphabet, esm_config  # deferred: fair-esm

    if config.backend == "hf":
        return HFEsmEncoder(esm_config(config.num_layers, config.hidden_size, config.num_heads, config.intermediate_size))
    if config.intermediate_size not in (None, 4 * config.hidden_size):
        raise ConfigError(f"the fair-esm back end fixes the FFN at 4 x hidden; intermediate_size={config.intermediate_size}")
    return FairEsmEncoder(
        num_layers=config.num_layers, embed_dim=config.hidden_size, attention_heads=config.num_heads,
        alphabet=esm_alphabet(), token_dropout=True,
    )


@dataclass
class SplicedBatch:
    """LM inputs with structure features spliced in; ``spans[i]`` = [(kind, start, end)] per structure."""

    inputs_embeds: Tensor  # [B, T, H]
    attention_mask: Tensor  # [B, T] long, 0 on padding
    position_ids: Tensor  # [B, T] long, counting real tokens only
    labels: Tensor | None  # [B, T] long, IGNORE_INDEX outside answers (+ EOS)
    spans: list[list[tuple[str, int, int]]] = field(default_factory=list)
    padding_side: str = "right"


def _per_prompt(items: Any, count: int, single: bool, what: str) -> list[list[Any]]:
    """Normalise molecules/proteins to one list per prompt."""
    if items is None:
        return [[] for _ in range(count)]
    if single:
        return [[items] if isinstance(items, str) else list(items)]
    if isinstance(items, str) or len(items) != count:
        raise InputError(f"{what}: expected one entry (None, a string or a list) per prompt, i.e. {count}")
    return [[] if item is None else [item] if isinstance(item, str) else list(item) for item in items]


class BioMedGPT(nn.Module):
    """GIN (molecules) + ESM-2 (proteins) + linear adaptors + a Llama-family causal LM."""

    def __init__(
        self,
        config: BioMedGPTConfig,
        llm: nn.Module,
        tokenizer: Any,
        mol_encoder: nn.Module | None = None,
        prot_encoder: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)  # untrained encoders/adaptors (and a new [PAD] row) are reproducible
            ensure_pad_token(llm, tokenizer, config.pad_token)
            self.mol_structure_encoder = mol_encoder if mol_encoder is not None else build_molecule_encoder(config.molecule)
            self.prot_structure_encoder = prot_encoder if prot_encoder is not None else build_protein_encoder(config.protein)
            self.llm = llm
            hidden = llm.config.hidden_size
            mol_width = getattr(self.mol_structure_encoder, "output_dim", config.molecule.emb_dim)
            self.proj_mol = nn.Linear(mol_width, hidden)
            self.proj_prot = nn.Linear(self.prot_structure_encoder.hidden_size, hidden)

    # ----------------------------------------------------------------------------------- helpers
    @property
    def lm(self) -> nn.Module:
        """The language model (alias of ``llm`` for callers that expect ``.lm``)."""
        return self.llm

    @property
    def device(self) -> torch.device:
        return self.proj_mol.weight.device

    @property
    def trained(self) -> bool:
        return bool(self.config.trained)

    def encode_molecules(self, smiles: Sequence[str]) -> list[Tensor]:
        """``proj_mol`` of the GIN atom features: one ``[atoms, lm_hidden]`` tensor per SMILES."""
        from biomedgpt.model.molecule import featurize_smiles  # deferred: torch_geometric, RDKit

        if not smiles:
            return []
        graph = featurize_smiles(list(smiles))
        atoms = self.mol_structure_encoder.encode(graph)
        counts = torch.bincount(graph.batch, minlength=len(smiles)).tolist()
        projected = self.proj_mol(atoms.to(self.proj_mol.weight.dtype))
        return list(torch.split(projected, counts))

    def encode_proteins(self, sequences: Sequence[str]) -> list[Tensor]:
        """``proj_prot`` of the ESM-2 last-layer features: one ``[L + 2, lm_hidden]`` tensor per protein."""
        from biomedgpt.model.protein import validate_sequence  # deferred: fair-esm

        if not sequences:
            return []
        many = len(sequences) > 1
        cleaned = [
            validate_sequence(seq, max_residues=self.config.max_residues, on_too_long=self.config.on_too_long,
                              name=f"#{i + 1} of {len(sequences)}" if many else None)
            for i, seq in enumerate(sequences)
        ]
        feats, mask = self.prot_structure_encoder.encode(cleaned)
        projected = self.proj_prot(feats.to(self.proj_prot.weight.dtype))
        return [projected[i][mask[i].to(projected.device)] for i in range(len(cleaned))]

    def _text_ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

    # ---------------------------------------------------------------------------------- splicing
    def splice(
        self,
        prompts: str | Sequence[str],
        molecules: Any = None,
        proteins: Any = None,
        answers: str | Sequence[str] | None = None,
        padding_side: str | None = None,
    ) -> SplicedBatch:
        """Build ``inputs_embeds`` for a batch; ``padding_side`` defaults to right with answers, left without."""
        single = isinstance(prompts, str)
        prompt_list = [prompts] if single else list(prompts)
        if not prompt_list:
            raise InputError("no prompts given")
        n = len(prompt_list)
        mols = _per_prompt(molecules, n, single, "molecules")
        prots = _per_prompt(proteins, n, single, "proteins")
        answer_list: list[str] | None = None
        if answers is not None:
            answer_list = [answers] if isinstance(answers, str) else list(answers)
            if len(answer_list) != n:
                raise InputError(f"answers: got {len(answer_list)} for {n} prompts")
        side = padding_side or ("right" if answer_list is not None else "left")
        if side not in ("left", "right"):
            raise ConfigError(f"padding_side {side!r} is not 'left' or 'right'")

        # Encode every structure of the batch in one pass per encoder.
        mol_feats = iter(self.encode_molecules([m for row in mols for m in row]))
        prot_feats = iter(self.encode_proteins([p for row in prots for p in row]))

        embed = self.llm.get_input_embeddings()
        dtype, device = embed.weight.dtype, embed.weight.device
        bos, eos = self.tokenizer.bos_token_id, self.tokenizer.eos_token_id
        rows: list[tuple[Tensor, Tensor, list[tuple[str, int, int]]]] = []
        for index, prompt in enumerate(prompt_list):
            parts = _PLACEHOLDER.split(prompt)
            n_mol = parts[1::2].count(MOLECULE_PLACEHOLDER)
            n_prot = parts[1::2].count(PROTEIN_PLACEHOLDER)
            if n_mol != len(mols[index]) or n_prot != len(prots[index]):
                raise InputError(
                    f"prompt {index + 1} has {n_mol} {MOLECULE_PLACEHOLDER} and {n_prot} {PROTEIN_PLACEHOLDER} "
                    f"placeholders but got {len(mols[index])} molecule(s) and {len(prots[index])} protein(s)"
                )
            pieces: list[tuple[str, Any]] = []  # ("text", ids) | ("molecule"/"protein", features)
            for k, part in enumerate(parts):
                if k % 2 == 0:
                    ids = self._text_ids(part)
                    if k == 0 and bos is not None and ids[:1] != [bos]:  # a chat template may open with BOS
                        ids = [bos, *ids]
                    pieces.append(("text", ids))
                elif part == MOLECULE_PLACEHOLDER:
                    pieces.append(("molecule", next(mol_feats)))
                else:
                    pieces.append(("protein", next(prot_feats)))
            answer_ids: list[int] = []
            if answer_list is not None:
                answer_ids = self._text_ids(answer_list[index]) + ([eos] if eos is not None else [])
                pieces.append(("answer", answer_ids))
            token_ids = [i for kind, value in pieces if kind in ("text", "answer") for i in value]
            token_embeds = embed(torch.tensor(token_ids, dtype=torch.long, device=device)) if token_ids else None
            chunks, labels, spans, cursor, position = [], [], [], 0, 0
            for kind, value in pieces:
                if kind in ("text", "answer"):
                    chunk = token_embeds[cursor: cursor + len(value)] if value else None
                    cursor += len(value)
                    if chunk is None:
                        continue
                    label = torch.tensor(value if kind == "answer" else [IGNORE_INDEX] * len(value), dtype=torch.long)
                else:
                    chunk = value.to(device=device, dtype=dtype)
                    label = torch.full((chunk.shape[0],), IGNORE_INDEX, dtype=torch.long)
                    spans.append((kind, position, position + chunk.shape[0]))
                chunks.append(chunk)
                labels.append(label)
                position += chunk.shape[0]
            rows.append((torch.cat(chunks), torch.cat(labels), spans))

        longest = max(row[0].shape[0] for row in rows)
        pad_id = self.tokenizer.pad_token_id
        pad_embed = embed(torch.tensor([pad_id], device=device))[0]
        batch_embeds, batch_mask, batch_labels, batch_spans = [], [], [], []
        for embeds, labels, spans in rows:
            gap = longest - embeds.shape[0]
            filler = pad_embed.expand(gap, -1)
            mask = torch.ones(embeds.shape[0], dtype=torch.long)
            no_mask = torch.zeros(gap, dtype=torch.long)
            no_label = torch.full((gap,), IGNORE_INDEX, dtype=torch.long)
            if side == "left":
                batch_embeds.append(torch.cat([filler, embeds]))
                batch_mask.append(torch.cat([no_mask, mask]))
                batch_labels.append(torch.cat([no_label, labels]))
                spans = [(kind, start + gap, end + gap) for kind, start, end in spans]
            else:
                batch_embeds.append(torch.cat([embeds, filler]))
                batch_mask.append(torch.cat([mask, no_mask]))
                batch_labels.append(torch.cat([labels, no_label]))
            batch_spans.append(spans)
        attention_mask = torch.stack(batch_mask).to(device)
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        return SplicedBatch(
            inputs_embeds=torch.stack(batch_embeds),
            attention_mask=attention_mask,
            position_ids=position_ids,
            labels=torch.stack(batch_labels).to(device) if answer_list is not None else None,
            spans=batch_spans,
            padding_side=side,
        )

    # ------------------------------------------------------------------------------ forward/generate
    def forward(
        self,
        prompts: str | Sequence[str],
        molecules: Any = None,
        proteins: Any = None,
        answers: str | Sequence[str] | None = None,
        padding_side: str | None = None,
    ) -> Any:
        """The LM output (``.logits``; ``.loss`` over answer tokens + EOS when ``answers`` are given)."""
        batch = self.splice(prompts, molecules, proteins, answers, padding_side)
        return self.llm(
            inputs_embeds=batch.inputs_embeds,
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids,
            labels=batch.labels,
            use_cache=False,
        )

    def decoder(self) -> LeanLlama:
        """The generation loop's view of the LM (``model/generation.LeanLlama``) in the ``lm_weights`` format of the
        settings (int8 on CPUs with native bf16), built on first use and again whenever a weight changed (training
        updates weights in place: each tensor's version counter moves) or the setting did."""
        from biomedgpt.core.settings import get_settings

        fmt = resolve_weight_format(get_settings().lm_weights, self.device)
        key = (fmt, tuple((p.data_ptr(), p._version) for p in self.llm.parameters()))
        if getattr(self, "_decoder_key", None) != key:
            self._decoder = LeanLlama(self.llm, fmt)
            self._decoder_key = key
        return self._decoder

    def generate_rows(
        self,
        prompts: str | Sequence[str],
        molecules: Any = None,
        proteins: Any = None,
        max_new_tokens: int = 64,
        do_sample: bool = False,
        stop_at_separator: bool = False,
        **options: Any,
    ) -> list[Generated]:
        """Greedy new tokens for each prompt and why each ended, from ``model/generation.greedy`` (the one decoding
        loop) on left-padded spliced embeddings.

        ``options`` are ``Decoding``'s fields: ``min_new_tokens``, ``stop_strings`` (``stop_at_separator`` adds the
        ``###`` turn separator), ``stop_repeat_ngram``, ``stop_repeat_times``, ``no_repeat_ngram_size``,
        ``repetition_penalty``, ``max_time``. Inside a ``core.cancel.cancel_scope`` the stop event is checked between layers and tokens:
        setting it (Ctrl-C) raises ``Cancelled`` promptly, in the prompt's prefill too."""
        if do_sample:
            raise ConfigError("BioMedGPT generates greedily; sampling (do_sample=True) is not offered")
        unknown = sorted(set(options) - _DECODING_FIELDS)
        if unknown:
            raise ConfigError(f"unknown generation option(s) {', '.join(unknown)}; known: "
                              f"max_new_tokens, {', '.join(sorted(_DECODING_FIELDS))}")
        stops = _stop_strings(options.pop("stop_strings", None), stop_at_separator)
        decoding = Decoding(max_new_tokens=max_new_tokens, stop_strings=tuple(stops), **options)
        check_cancelled()
        batch = self.splice(prompts, molecules, proteins, padding_side="left")
        eos = self.tokenizer.eos_token_id
        return greedy(self.decoder(), batch.inputs_embeds, batch.attention_mask, decoding,
                      eos_ids=() if eos is None else (eos,), tokenizer=self.tokenizer)

    def generate_ids(
        self,
        prompts: str | Sequence[str],
        molecules: Any = None,
        proteins: Any = None,
        max_new_tokens: int = 64,
        do_sample: bool = False,
        stop_at_separator: bool = False,
        **options: Any,
    ) -> Tensor:
        """New token ids ``[B, ≤ max_new_tokens]`` as transformers' ``generate`` returns them (EOS kept, shorter rows
        padded with the pad id): :meth:`generate_rows` as a tensor."""
        rows = self.generate_rows(prompts, molecules, proteins, max_new_tokens, do_sample, stop_at_separator, **options)
        width = max(len(row.ids) for row in rows)
        out = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        for i, row in enumerate(rows):
            out[i, : len(row.ids)] = torch.tensor(row.ids, dtype=torch.long)
        return out

    def generate(
        self,
        prompts: str | Sequence[str],
        molecules: Any = None,
        proteins: Any = None,
        max_new_tokens: int = 64,
        do_sample: bool = False,
        stop_at_separator: bool = True,
        stop_repeat_ngram: int = REPEAT_STOP_NGRAM,
        stop_repeat_times: int = REPEAT_STOP_TIMES,
        **options: Any,
    ) -> list[str]:
        """Decoded answers, one per prompt, cut at the ``###`` turn separator and at any ``stop_strings``
        (e.g. ``["\\n"]`` for one-paragraph answers such as ChEBI-20 descriptions). An answer in which an n-gram
        of ``stop_repeat_ngram`` tokens occurs ``stop_repeat_times`` times ends there: a loop (0: never)."""
        stops = _stop_strings(options.get("stop_strings"), stop_at_separator)
        rows = self.generate_rows(prompts, molecules, proteins, max_new_tokens, do_sample, stop_at_separator,
                                  stop_repeat_ngram=stop_repeat_ngram, stop_repeat_times=stop_repeat_times,
                                  **options)
        texts = self.tokenizer.batch_decode([row.ids for row in rows], skip_special_tokens=True)
        return [_cut(text, stops) for text in texts]

    def build_prompt(
        self,
        question: str,
        *,
        molecules: int = 0,
        proteins: int = 0,
        history: Sequence[tuple[str, str]] | None = None,
        context: str | None = None,
    ) -> str:
        """The chat prompt in this model's ``config.prompt_format`` for any number of structures, with
        ``context`` as given (no retrieval). ``ask`` builds a one-structure prompt with
        ``model/prompts.structure_prompt`` (``chat=True``), which gives the same string for the same context."""
        return conversation_prompt(self.config.prompt_format, question, tokenizer=self.tokenizer,
                                   molecules=molecules, proteins=proteins, history=history, context=context)

    def ask(
        self,
        question: str,
        smiles: str | Sequence[str] | None = None,
        sequence: str | Sequence[str] | None = None,
        history: Sequence[tuple[str, str]] | None = None,
        max_new_tokens: int = 128,
        context: str | None = None,
        retrieval: bool | None = None,
        **generate_kwargs: Any,
    ) -> str:
        """Answer one question about molecules (SMILES) and/or proteins in the model's prompt format.

        For a single molecule or protein the prompt is ``model/prompts.structure_prompt``'s (the one
        training and evaluation build): ``retrieval`` (default: ``config.retrieval.enabled``, how the model
        was trained) puts its ``config.retrieval.k`` nearest known references into it, as training did;
        an explicit ``context`` is used as given instead.
        """
        if not isinstance(question, str) or not question.strip():
            raise InputError("the question is empty")
        mols = [] if smiles is None else [smiles] if isinstance(smiles, str) else list(smiles)
        prots = [] if sequence is None else [sequence] if isinstance(sequence, str) else list(sequence)
        if len(mols) + len(prots) == 1:
            kind, structure = ("molecule", mols[0]) if mols else ("protein", prots[0])
            prompt = model_structure_prompt(self, kind, question, structure=structure, retrieval=retrieval,
                                            context=context, history=history, chat=True).text
        else:
            prompt = self.build_prompt(question, molecules=len(mols), proteins=len(prots), history=history,
                                       context=context)
        return self.generate(prompt, mols, prots, max_new_tokens=max_new_tokens, **generate_kwargs)[0]

    def retrieval_context(self, smiles: str | None = None, sequence: str | None = None) -> str | None:
        """The context block of the ``config.retrieval.k`` nearest shipped references (ChEBI-20
        validation molecules by Morgan/Tanimoto, Swiss-Prot train-split proteins by 3-mer cosine), under
        ``model/prompts``' exclusion rule: what ``ask`` puts into the prompt."""
        k = self.config.retrieval.k
        if smiles is not None:
            return retrieval_context("molecule", smiles, k)[0]
        if sequence is not None:
            return retrieval_context("protein", sequence, k)[0]
        return None


def _stop_strings(extra: Sequence[str] | str | None, separator: bool) -> list[str]:
    stops = [extra] if isinstance(extra, str) else list(extra or [])
    if separator and SEPARATOR not in stops:
        stops.append(SEPARATOR)
    return stops


def _cut(text: str, stops: Sequence[str]) -> str:
    """The answer before the first stop string (leading blank lines ignored)."""
    text = text.strip()
    for stop in stops:
        text = text.split(stop)[0]
    return text.strip()
