"""Ask the BioMedGPT model about a structure: ``describe_molecule("CCO")``, ``describe_protein("P05067")``.

Use: ``from biomedgpt.tools.biomedgpt_tool import describe_molecule, describe_protein``. Each returns a
``ModelAnswer`` holding the model's text AND exactly what the model saw: the structure it encoded
(SMILES / canonical SMILES / one soft token per heavy atom; or the residues, with ESM-2's BOS/EOS),
and the full text prompt with the ``<moleculeHere>`` / ``<proteinHere>`` placeholders where the
structure features are spliced in.

Why report the inputs: a scientist must be able to tell what was asked of the model (which
structure a name resolved to, whether a long sequence was cut) before trusting the answer; a model
whose encoders are untrained (no shipped weights) has its answer flagged as not evidence.

Names, CIDs and InChIKeys resolve through PubChem; accessions and protein names through UniProt (the
clients of the ``services`` given, ``tools/services.py``; by default those of the run calling the tool); a
SMILES or a sequence needs no network. The configured model (``BIOMEDGPT_MODEL``, default ``mini``, on
``BIOMEDGPT_DEVICE``) is loaded once per process and shared by threads and assistants (:func:`get_model`);
generation runs one call at a time.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import asdict, dataclass
from typing import Any

from biomedgpt.core.chem import looks_like_sequence, try_parse_smiles, validate_sequence
from biomedgpt.core.errors import (
    BiomedGPTError,
    ConfigError,
    InputError,
    InvalidSequenceError,
    InvalidSmilesError,
)
from biomedgpt.core.settings import Settings, get_settings, resolve_device
from biomedgpt.model.conversation import CAPTION_QUESTION
from biomedgpt.model.prompts import StructurePrompt, model_structure_prompt
from biomedgpt.tools.errors import NotFound
from biomedgpt.tools.progress import report
from biomedgpt.tools.records import Compound, ModelAnswer, ProteinEntry
from biomedgpt.tools.services import Services, services_in_force

DEFAULT_MOLECULE_QUESTION = CAPTION_QUESTION  # what the mini model was trained to answer
DEFAULT_PROTEIN_QUESTION = "What is the function of this protein?"
UNTRAINED_NOTE = "encoders are untrained; this text is not evidence"


@dataclass(frozen=True)
class AnswerGeneration:
    """How the model generates a tool answer (greedy).

    The default is what ``eval captioning`` measures for the mini model: plain greedy decoding of one
    paragraph (a ChEBI-style description is one paragraph; ``one_paragraph`` stops at the first line
    break). A repetition penalty and an n-gram ban (preset ``readable``) keep small or untrained models
    from looping on one phrase, at a small cost in agreement with the reference texts.
    """

    max_new_tokens: int = 160
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    one_paragraph: bool = True

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``BioMedGPT.ask`` (and so for ``model/generation.greedy``)."""
        settings = asdict(self)
        if settings.pop("one_paragraph"):
            settings["stop_strings"] = ["\n"]
        return settings


#: Named generation presets: ``describe_molecule(..., generation="short")``.
GENERATION_PRESETS: dict[str, AnswerGeneration] = {
    "default": AnswerGeneration(),
    "short": AnswerGeneration(max_new_tokens=48),
    "readable": AnswerGeneration(repetition_penalty=1.15, no_repeat_ngram_size=4),
    "raw": AnswerGeneration(max_new_tokens=128, one_paragraph=False),  # plain greedy, no stop but EOS
}


def _generation(generation: str | AnswerGeneration) -> AnswerGeneration:
    if isinstance(generation, AnswerGeneration):
        return generation
    try:
        return GENERATION_PRESETS[generation]
    except KeyError:
        raise ConfigError(f"unknown generation preset {generation!r}; known: {', '.join(GENERATION_PRESETS)}") from None


class StructureNotResolved(InputError):
    """A name, CID or accession could not be turned into a structure the model can read."""


# ----------------------------------------------------------------------------------------- the model

class _LoadedModels:
    """The one process-wide cache of loaded BioMedGPT models, keyed by (name, device, dtype).

    Why process-wide, unlike everything in ``Services``: a model is hundreds of megabytes to gigabytes and
    holds no per-run state, so two assistants asking for the same model on the same device share one copy;
    the key holds the device and dtype, so an assistant configured for another device gets its own copy
    instead of whichever was loaded first."""

    def __init__(self) -> None:
        self.load_lock = threading.Lock()
        self.models: dict[tuple[str, str, str], Any] = {}

    def get(self, name: str, device: str, dtype: Any) -> Any:
        key = (name, device, str(dtype) if dtype is not None else "default")
        model = self.models.get(key)
        if model is not None:
            return model
        with self.load_lock:
            model = self.models.get(key)
            if model is None:
                from biomedgpt.model import (
                    load_model,  # deferred: torch and transformers
                )

                report(f"loading the BioMedGPT model {name!r} on {device} (once per process)")
                model = load_model(name, device=device, dtype=dtype)
                model.decoder()  # the generation loop's weights (int8 on most CPUs) belong to the load, once
                self.models[key] = model
        return model

    def clear(self) -> None:
        with self.load_lock:
            self.models.clear()


#: Loaded models, shared by every thread and ``Assistant`` of the process (see :class:`_LoadedModels`).
LOADED_MODELS = _LoadedModels()
_GENERATE_LOCK = threading.Lock()


def get_model(name: str | None = None, *, device: str | None = None, dtype: Any = None,
              settings: Settings | None = None) -> Any:
    """The BioMedGPT model ``name`` (default: ``settings.model``) on ``device`` (default: ``settings.device``,
    ``auto`` meaning CUDA when available: ``core.settings.resolve_device``), loaded once per process for each
    (name, device, dtype)."""
    settings = settings or get_settings()
    return LOADED_MODELS.get(name or settings.model, resolve_device(device or settings.device), dtype)


def _resolve_model(model: Any, settings: Settings) -> Any:
    if model is None or isinstance(model, str):
        return get_model(model, settings=settings)
    return model


def _model_label(model: Any) -> str:
    return str(getattr(model.config, "name", "") or type(model).__name__)


#: Nearest references attached to a model answer as its evidence (issue 15: the reference, not the model's
#: paraphrase of it, is what an answer may rest on).
EVIDENCE_REFERENCES = 3


def _finish(model: Any, text: str, question: str, inputs: dict, prompt: str, evidence: list | None = None,
            floor: float = 0.0) -> ModelAnswer:
    trained = bool(getattr(model.config, "trained", False))
    return ModelAnswer(text=text.strip(), question=question, inputs=inputs, prompt=prompt,
                       model=_model_label(model), trained=trained, note="" if trained else UNTRAINED_NOTE,
                       evidence=evidence or [], evidence_floor=floor, evidence_searched=evidence is not None)


def _ask(model: Any, built: StructurePrompt, generation: AnswerGeneration, *, smiles: str | None = None,
         sequence: str | None = None) -> str:
    """Generate from the built prompt, one call at a time (the model and its KV cache are not shared
    between threads). ``built.text`` is exactly what ``BioMedGPT.ask`` would send for the same
    structure, question and context (both come from ``model/prompts.structure_prompt``)."""
    with _GENERATE_LOCK:
        report(f"the BioMedGPT model {_model_label(model)!r} is writing its answer (Ctrl-C cancels)")
        return model.generate(built.text, [smiles] if smiles is not None else [],
                              [sequence] if sequence is not None else [], **generation.kwargs())[0]


def _prompt(model: Any, kind: str, question: str, structure: str, retrieval: bool | None,
            query_id: str | None, inputs: dict) -> StructurePrompt:
    """The prompt of ``model/prompts.structure_prompt`` in the conversation template ``ask`` uses, with
    the retrieval context when asked or when the model was trained with it (``config.retrieval.enabled``);
    the query's own CID/accession (``query_id``) is never retrieved. Records the retrieved ids."""
    built = model_structure_prompt(model, kind, question, structure=structure, retrieval=retrieval,
                                   query_id=query_id, chat=True)
    if retrieval or (retrieval is None and model.config.retrieval.enabled):
        inputs["retrieved"] = [hit.id for hit in built.hits]
    return built


# ----------------------------------------------------------------------------------------- molecules


@dataclass
class ResolvedMolecule:
    """A molecule query turned into a structure; ``compound`` is set when PubChem resolved it."""

    query: str
    smiles: str
    compound: Compound | None = None


def resolve_molecule(query: str, services: Services | None = None) -> ResolvedMolecule:
    """SMILES as given (no network); a CID, InChIKey or name through PubChem (``services``' client; default: those
    of the run calling this, ``tools/services.services_in_force``).

    Raises ``StructureNotResolved`` naming the query and why (not found, offline, service down).
    """
    if not isinstance(query, str) or not query.strip():
        raise InputError(f"molecule query {query!r} is empty: give a SMILES, a PubChem CID or a compound name")
    text = query.strip()
    if not text.isdigit() and try_parse_smiles(text) is not None:
        return ResolvedMolecule(query=text, smiles=text)
    try:
        compound = (services or services_in_force()).pubchem.compound(text, details=False)
    except BiomedGPTError as error:
        raise StructureNotResolved(
            f"could not resolve {text!r} to a molecular structure: {error}. "
            "Give the structure as a SMILES to work without PubChem."
        ) from error
    smiles = compound.smiles or compound.connectivity_smiles
    if not smiles:
        raise StructureNotResolved(f"could not resolve {text!r} to a molecular structure: "
                                   f"PubChem CID {compound.cid} has no SMILES")
    return ResolvedMolecule(query=text, smiles=smiles, compound=compound)


def molecule_inputs(resolved: ResolvedMolecule) -> dict:
    """What the model sees of a molecule: the SMILES, its canonical form and one soft token per heavy atom."""
    from rdkit import Chem  # deferred: RDKit costs ~0.2 s to import

    mol = try_parse_smiles(resolved.smiles)
    if mol is None:
        raise InvalidSmilesError(f"invalid SMILES {resolved.smiles!r}: RDKit cannot parse it")
    atoms = mol.GetNumAtoms()  # heavy atoms: the featurizer adds no hydrogens
    inputs: dict[str, Any] = {"smiles": resolved.smiles, "canonical_smiles": Chem.MolToSmiles(mol),
                              "heavy_atoms": atoms, "soft_tokens": atoms}
    if resolved.compound is not None:
        inputs.update({"query": resolved.query, "cid": resolved.compound.cid, "title": resolved.compound.title})
    return inputs


def describe_molecule(query: str, question: str = DEFAULT_MOLECULE_QUESTION, *, model: Any = None,
                      retrieval: bool | None = None, generation: str | AnswerGeneration = "default",
                      services: Services | None = None) -> ModelAnswer:
    """Ask BioMedGPT ``question`` about a molecule given as SMILES, PubChem CID or name.

    ``model`` is a loaded BioMedGPT, a preset name or path, or ``None`` for the configured one (``services``'
    settings: model and device; ``services`` also resolves names, default: those of the run calling this).
    ``retrieval`` puts the nearest known molecules (ChEBI-20 references) into the prompt; by default
    only when the model was trained that way (``model.config.retrieval.enabled``).
    """
    question = (question or "").strip() or DEFAULT_MOLECULE_QUESTION
    settings = _generation(generation)
    services = services or services_in_force()
    resolved = resolve_molecule(query, services)
    inputs = molecule_inputs(resolved)
    model = _resolve_model(model, services.settings)
    cid = str(resolved.compound.cid) if resolved.compound is not None else None
    built = _prompt(model, "molecule", question, resolved.smiles, retrieval, cid, inputs)
    inputs["generation"] = settings.kwargs()
    text = _ask(model, built, settings, smiles=resolved.smiles)
    from biomedgpt.tools.similarity import similar_known  # deferred: the reference index

    # the nearest known molecules are the evidence (an identical entry too: the prompt leaves it out, the evidence
    # must not); the model's text is shown after them as an unchecked paraphrase
    evidence = similar_known(smiles=resolved.smiles, k=EVIDENCE_REFERENCES, online=False, leave_self_out=False)
    return _finish(model, text, question, inputs, built.text, evidence, services.settings.neighbour_min_similarity)


# ----------------------------------------------------------------------------------------- proteins


@dataclass
class ResolvedProtein:
    """A protein query turned into residues; ``entry`` is set when UniProt resolved it."""

    query: str
    sequence: str
    entry: ProteinEntry | None = None


def resolve_protein(query: str, *, organism: str | None = None, services: Services | None = None) -> ResolvedProtein:
    """A sequence (or FASTA) as given, with no network; an accession or a name through UniProt (``services``' client;
    default: those of the run calling this)."""
    if not isinstance(query, str) or not query.strip():
        raise InputError(f"protein query {query!r} is empty: give a sequence, a UniProt accession or a name")
    text = query.strip()
    if looks_like_sequence(text):
        return ResolvedProtein(query=text, sequence=text)
    try:
        found = (services or services_in_force()).uniprot.find(text, organism=organism)
        if not found:
            where = f" in {organism}" if organism else ""
            raise NotFound("UniProt", f"no entry found for {text!r}{where}")
        entry = found[0]
    except BiomedGPTError as error:
        raise StructureNotResolved(
            f"could not resolve {text!r} to a protein sequence: {error}. "
            "Give the amino-acid sequence to work without UniProt."
        ) from error
    if not entry.sequence:
        raise StructureNotResolved(f"could not resolve {text!r} to a protein sequence: "
                                   f"UniProt {entry.accession} has no sequence")
    return ResolvedProtein(query=text, sequence=entry.sequence, entry=entry)


def protein_inputs(resolved: ResolvedProtein, max_residues: int) -> tuple[dict, str]:
    """What the model sees of a protein (residues, ESM-2 tokens, truncation) and the cleaned sequence."""
    name = resolved.entry.accession if resolved.entry is not None else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = validate_sequence(resolved.sequence, max_residues=10**6, name=name)
    seen = min(len(full), max_residues)
    inputs: dict[str, Any] = {"sequence": full, "residues": len(full), "residues_seen": seen,
                              "soft_tokens": seen + 2, "truncated": len(full) > max_residues}
    if inputs["truncated"]:
        inputs["truncation_note"] = (f"the sequence has {len(full)} residues; the model read the first {seen} "
                                     f"(ESM-2 takes at most {max_residues} residues plus BOS and EOS)")
    if resolved.entry is not None:
        inputs.update({"query": resolved.query, "accession": resolved.entry.accession,
                       "protein_name": resolved.entry.protein_name})
    return inputs, full


def describe_protein(query: str, question: str = DEFAULT_PROTEIN_QUESTION, *, model: Any = None,
                     retrieval: bool | None = None, organism: str | None = None,
                     generation: str | AnswerGeneration = "default", services: Services | None = None) -> ModelAnswer:
    """Ask BioMedGPT ``question`` about a protein given as a sequence, UniProt accession or name.

    Over-long sequences follow the model's policy (``config.on_too_long``): truncated, with the cut
    reported in ``inputs``, or an ``InvalidSequenceError``.
    """
    question = (question or "").strip() or DEFAULT_PROTEIN_QUESTION
    settings = _generation(generation)
    services = services or services_in_force()
    resolved = resolve_protein(query, organism=organism, services=services)
    model = _resolve_model(model, services.settings)
    config = model.config
    max_residues = int(getattr(config, "max_residues", 1022))
    inputs, sequence = protein_inputs(resolved, max_residues)
    if inputs["truncated"] and getattr(config, "on_too_long", "truncate") == "error":
        raise InvalidSequenceError(f"protein sequence {resolved.query[:30]!r} has {inputs['residues']} residues; "
                                   f"model {_model_label(model)!r} accepts at most {max_residues}")
    accession = resolved.entry.accession if resolved.entry is not None else None
    built = _prompt(model, "protein", question, sequence, retrieval, accession, inputs)
    inputs["generation"] = settings.kwargs()
    text = _ask(model, built, settings, sequence=sequence[:max_residues])
    from biomedgpt.tools.similarity import protein_homologues  # deferred: pyhmmer and the reference

    # a protein's evidence is its homologues by alignment (E-value within protein_max_evalue), not the 3-mer
    # neighbours of the prompt, which are no evidence of function
    evidence = protein_homologues(sequence, EVIDENCE_REFERENCES, exclude_ids=[accession] if accession else (),
                                  settings=services.settings)
    answer = _finish(model, text, question, inputs, built.text, evidence)
    if inputs["truncated"]:
        answer.note = "; ".join(part for part in (answer.note, inputs["truncation_note"]) if part)
    return answer
