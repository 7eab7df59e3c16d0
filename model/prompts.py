"""The one prompt for a question about one structure, with its retrieval context: ``structure_prompt(...)``.

Why one builder: alignment training, evaluation, ``BioMedGPT.ask`` and the BioMedGPT tool must put the
same nearest references into the same template, or the model is served a prompt it was not trained
on. Each of them calls ``structure_prompt``; none formats the context block or chooses exclusions itself.

The one exclusion rule (``retrieve``): a query never retrieves itself — no reference with the query's
InChIKey (molecules) or an identical sequence (proteins) — nor a reference whose id is the query's own
(``query_id``: its PubChem CID or UniProt accession, when known) or is in ``exclude_ids`` (an explicit
set: the held-out rows, ``held_out_ids``; ``eval captioning`` passes the rows it evaluates, so the
shipped reference, which holds every ChEBI-20 row, serves an evaluation only what training could see). The references come from ``index`` (training passes the index of its
training rows), by default the shipped ones (``model/retrieval.default_molecule_index`` /
``default_protein_index``). The block is ``model/retrieval.format_context`` of the hits.

Two templates, chosen by ``chat`` and the model's ``prompt_format`` (``model/conversation.py``):

- ``chat=False`` (training, evaluation): the prompt alignment fits, ``task_prompt`` — the paper's Table 1
  template ("biomedgpt") or one ChatML user turn ("chatml");
- ``chat=True`` (``ask``, the tool): the conversation format, ``conversation_prompt``, which can carry
  earlier turns (``history``) — the released chat format ("biomedgpt") or ChatML.

In ChatML (the mini model's format) the two are the same string when there is no history, so the
shipped model is asked exactly what it was trained on (``tests/training/test_prompt_parity.py``). In
the "biomedgpt" format they differ by design: the released 10B checkpoint is chatted with in its
released ``### Human:`` format, while alignment fits Table 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from biomedgpt.core.errors import InputError
from biomedgpt.model.conversation import conversation_prompt, task_prompt
from biomedgpt.model.retrieval import Hit, default_molecule_index, default_protein_index, format_context

KINDS = ("molecule", "protein")


@dataclass(frozen=True)
class StructurePrompt:
    """A built prompt: ``text`` (with the structure placeholder), the ``context`` block in it (None when
    there is none) and the references retrieved for it (``hits``, best first; empty without retrieval)."""

    text: str
    context: str | None = None
    hits: tuple[Hit, ...] = ()


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise InputError(f"structure kind must be 'molecule' or 'protein', got {kind!r}")


def default_index(kind: str) -> Any:
    """The shipped reference index of ``kind`` (ChEBI-20 validation molecules; Swiss-Prot train proteins)."""
    _check_kind(kind)
    return default_molecule_index() if kind == "molecule" else default_protein_index()


def retrieve(kind: str, structure: str, k: int, *, index: Any = None, query_id: str | None = None,
             exclude_ids: Iterable[str] = ()) -> list[Hit]:
    """The ``k`` nearest references of a SMILES or sequence under the one exclusion rule (module doc).

    An input the index cannot read (RDKit rejects the SMILES, a letter is not an amino acid) raises
    ``InputError``; callers that must not stop on one bad row catch it.
    """
    _check_kind(kind)
    excluded = [str(i) for i in exclude_ids] + ([str(query_id)] if query_id else [])
    index = index if index is not None else default_index(kind)
    return index.search(structure, k, exclude_ids=excluded, leave_self_out=True)


def held_out_ids(kind: str, rows: Iterable[tuple[str, str]], *, index: Any = None) -> frozenset[str]:
    """The explicit excluded-ID set that holds ``rows`` (``(id, SMILES or sequence)``: e.g. the rows an
    evaluation scores) out of ``index`` (default: the shipped one): their own ids and the ids of references
    that are the same structure under another id (InChIKey; identical sequence). Passed as ``exclude_ids``,
    no held-out row serves as a reference for any query, not only for itself."""
    _check_kind(kind)
    index = index if index is not None else default_index(kind)
    return frozenset(index.same_as(rows))


def retrieval_context(kind: str, structure: str, k: int, *, index: Any = None, query_id: str | None = None,
                      exclude_ids: Iterable[str] = ()) -> tuple[str | None, list[Hit]]:
    """``(block, hits)``: the context block of the ``k`` nearest references (``retrieve``'s rule), None
    when nothing was retrieved, and the hits in it."""
    hits = retrieve(kind, structure, k, index=index, query_id=query_id, exclude_ids=exclude_ids)
    return format_context(hits, kind) or None, hits


def structure_prompt(prompt_format: str, kind: str, question: str, *, structure: str | None = None, k: int = 0,
                     index: Any = None, query_id: str | None = None, exclude_ids: Iterable[str] = (),
                     context: str | None = None, tokenizer: Any = None,
                     history: Sequence[tuple[str, str]] | None = None, chat: bool = False) -> StructurePrompt:
    """The prompt for ``question`` about one structure of ``kind`` in ``prompt_format``.

    With ``k`` ≥ 1 the context block of the ``k`` nearest references of ``structure`` goes in front of
    the question (``retrieve``: from ``index``, default the shipped one, leaving out the query itself,
    ``query_id`` and ``exclude_ids``); with ``k`` = 0 there is none, unless an explicit ``context`` is
    given (text used as is; giving both is an error). ``chat`` picks the conversation template
    (``ask``, the tool; may carry ``history``) instead of the training one (module doc).
    """
    _check_kind(kind)
    hits: list[Hit] = []
    if k:
        if context is not None:
            raise InputError("give either an explicit context or k ≥ 1 for retrieval, not both")
        if structure is None:
            raise InputError(f"retrieval needs the {kind} itself (structure=...)")
        context, hits = retrieval_context(kind, structure, k, index=index, query_id=query_id, exclude_ids=exclude_ids)
    context = (context or "").strip() or None
    if chat:
        counts = {"molecules": 1} if kind == "molecule" else {"proteins": 1}
        text = conversation_prompt(prompt_format, question, tokenizer=tokenizer, history=history, context=context,
                                   **counts)
    else:
        if history:
            raise InputError("the training template has no earlier turns: use chat=True with a history")
        text = task_prompt(prompt_format, kind, question, context=context, tokenizer=tokenizer)
    return StructurePrompt(text=text, context=context, hits=tuple(hits))


def model_structure_prompt(model: Any, kind: str, question: str, *, structure: str | None = None,
                           retrieval: bool | None = None, **kwargs: Any) -> StructurePrompt:
    """``structure_prompt`` in a loaded model's terms: its ``prompt_format``, its tokenizer and, when
    ``retrieval`` (default: ``config.retrieval.enabled``, how it was trained), its ``retrieval.k``
    neighbours. Other keyword arguments (``query_id``, ``exclude_ids``, ``index``, ``context``,
    ``history``, ``chat``) pass through."""
    config = model.config
    use = config.retrieval.enabled if retrieval is None else retrieval
    k = config.retrieval.k if use and kwargs.get("context") is None else 0
    return structure_prompt(config.prompt_format, kind, question, structure=structure, k=k,
                            tokenizer=getattr(model, "tokenizer", None), **kwargs)
