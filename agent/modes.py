"""Who picks the tools (``BIOMEDGPT_TOOL_CHOICE``) and what a chat model's answer must pass.

- ``router`` (default): the question-understanding layer (``agent/planner.py``) picks and runs the tools. With a
  chat model configured, the model then only **writes** the answer, from the turn's records given as text with
  their citation labels (``Record.chat_text()``) and the router's composed answer as a draft
  (:func:`writer_messages`). This works with small local models (SmolLM2-135M) that cannot call tools.
- ``model``: the chat model calls the tools itself (capable models). It is offered only the tools relevant to
  what the question asks (:func:`tools_for_question`; all ten cost about 2,100 prompt tokens), is required to
  call one on the first step when the question names a molecule, protein or paper (where the API supports
  ``tool_choice``), and gets no tool at all for an off-domain question, a greeting or an unclear one.

Either way a chat model's answer goes through :func:`finish_answer`: unknown citation labels are marked
(``check_citations``), every sentence that states a fact is checked against the records (``agent/grounding``),
an answer with unchecked claims opens with one line saying so, and a reply cut at ``BIOMEDGPT_LLM_MAX_TOKENS``
or at the deadline says so at its end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from biomedgpt.agent.answer import check_citations
from biomedgpt.agent.backends import ChatLimits, reply_info
from biomedgpt.agent.grounding import Evidence, ungrounded_sentences, unchecked_note
from biomedgpt.agent.state import ARTIFACT_KINDS
from biomedgpt.tools.langchain_tools import TOOL_NAMES
from biomedgpt.tools.records import RECORD_TYPES

ROUTER = "router"
MODEL = "model"
#: Intents that call no tool, in either mode.
NO_TOOL_INTENTS = frozenset({"out_of_domain", "help", "unclear"})

_MOLECULE_LOOKUPS = ("pubchem_lookup", "molecule_properties")
_PROTEIN_LOOKUPS = ("uniprot_lookup", "uniprot_search")
_LITERATURE = ("literature_search", "pubmed_fetch")
#: Besides the look-ups for the entities named: the tools each intent may need.
_INTENT_TOOLS: dict[str, tuple[str, ...]] = {
    "describe": ("similar_known", "describe_molecule", "describe_protein"),
    "attribute": (),
    "compare": (),
    "similarity_pair": ("molecule_properties",),
    "similar": ("similar_known", "pubchem_similar"),
    "literature": _LITERATURE,
    "model": ("describe_molecule", "describe_protein"),
}


# ----------------------------------------------------------------------------- model mode


def tools_for_question(intent: str | None, entity_kinds: Sequence[str], routed: Sequence[str],
                       tools: Sequence[Any]) -> list[Any]:
    """The tools offered to a chat model for one question: none for off-domain, help or unclear questions;
    otherwise the look-ups for the kinds of entity named (both molecule and protein look-ups when none is),
    the intent's own tools, and whatever the router would have called. Tools that are not biomedgpt's own
    (a custom deployment's) are always offered: they cannot be classified."""
    if intent in NO_TOOL_INTENTS:
        return []
    kinds = set(entity_kinds)
    wanted: set[str] = set(routed) | set(_INTENT_TOOLS.get(intent or "", ()))
    if kinds & {"molecule", "cid", "inchikey"}:
        wanted |= set(_MOLECULE_LOOKUPS)
    if "protein" in kinds:
        wanted |= set(_PROTEIN_LOOKUPS)
    if "pmid" in kinds:
        wanted |= set(_LITERATURE)
    if not kinds & {"molecule", "cid", "inchikey", "protein", "pmid"} and intent != "literature":
        wanted |= set(_MOLECULE_LOOKUPS) | set(_PROTEIN_LOOKUPS)
    if "molecule" not in kinds and "protein" in kinds:
        wanted.discard("describe_molecule")
    if "protein" not in kinds and kinds & {"molecule", "cid", "inchikey"}:
        wanted.discard("describe_protein")
    return [t for t in tools if t.name in wanted or t.name not in TOOL_NAMES]


def screen_reply(reply: AIMessage, offered: Sequence[str], tools_allowed: bool) -> AIMessage:
    """A model-mode reply made safe to keep and to send back.

    - ``tools_allowed`` False (an off-domain, help or unclear question): tool calls are not run; they are kept in
      ``additional_kwargs["refused_calls"]`` for the turn's report.
    - Malformed calls (``invalid_tool_calls``: arguments that are not JSON, a call cut off by the token limit)
      become calls with empty arguments, so the history stays valid for every server, and are listed in
      ``additional_kwargs["malformed_calls"]`` (id → raw arguments and the reason); the tools node answers them
      with an error the model can react to instead of running them.
    """
    calls = list(reply.tool_calls)
    invalid = list(reply.invalid_tool_calls)
    extra = dict(reply.additional_kwargs)
    if not tools_allowed:
        refused = [{"name": c.get("name") or "?", "args": c.get("args") or {}} for c in calls + invalid]
        if refused:
            extra["refused_calls"] = refused
        return AIMessage(content=reply.content, id=reply.id, additional_kwargs=extra,
                         response_metadata=reply.response_metadata, usage_metadata=reply.usage_metadata)
    if invalid:
        malformed = dict(extra.get("malformed_calls") or {})
        for bad in invalid:
            call_id = bad.get("id") or f"call_malformed_{len(malformed)}"
            name = bad.get("name") or "unnamed_tool"
            malformed[call_id] = {"name": name, "args": str(bad.get("args") or ""),
                                  "error": str(bad.get("error") or "arguments are not a JSON object")}
            calls.append({"name": name, "args": {}, "id": call_id, "type": "tool_call"})
        extra["malformed_calls"] = malformed
    return AIMessage(content=reply.content, tool_calls=calls, id=reply.id, additional_kwargs=extra,
                     response_metadata=reply.response_metadata, usage_metadata=reply.usage_metadata)


def malformed_message(name: str, raw: str, error: str, offered: Sequence[str]) -> str:
    """The error a malformed call gets instead of being run (the model sees it and may try again)."""
    shown = raw if len(raw) <= 200 else raw[:197] + "..."
    known = "" if name in offered else f" ({name!r} is not one of the offered tools: {', '.join(offered)})"
    return (f"Error: malformed call to {name}{known}: {error}; arguments as written: {shown!r}. Write the "
            "arguments as one JSON object.")


# ----------------------------------------------------------------------------- router mode: the writer

WRITER_PROMPT = """You are BioMedGPT, a careful biomedical research assistant. Write the answer to the user's \
question using ONLY the records and the draft given with it; add nothing from memory.
- After every sentence that states a fact, put the bracketed label of the record it comes from, copied exactly, \
e.g. [PubChem CID 2244], [UniProt P05067], [PMID 12345678] or [RDKit].
- Copy numbers exactly as the records write them.
- Text labelled [BioMedGPT] is model output, not a database fact: say so if you use it.
- If the records do not answer the question, say so plainly. Keep it short."""

#: How much of the turn goes into the writer's prompt (a small model has a small context and little patience).
WRITER_RECORDS = 8
WRITER_RECORD_CHARS = 700
WRITER_DRAFT_CHARS = 1600


def _records(state: Mapping[str, Any]) -> list[Any]:
    out = []
    for kind in ARTIFACT_KINDS:
        record_type = RECORD_TYPES.get(kind)
        for raw in state.get(kind) or []:
            if record_type is not None and isinstance(raw, Mapping):
                out.append(record_type.model_validate(raw))
    return out


def _cut(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


def writer_messages(question: str, state: Mapping[str, Any], draft: str,
                    system: str | None = None) -> list[BaseMessage]:
    """The prompt of the router-mode writer: the records (``chat_text()``, each with its label), the composed
    answer as a draft, and the question."""
    lines = [f"Question: {question.strip()}", ""]
    records = _records(state)[:WRITER_RECORDS]
    if records:
        lines.append("Records:")
        lines += [f"- {_cut(record.chat_text(), WRITER_RECORD_CHARS)}" for record in records]
    else:
        lines.append("Records: none (no tool applies to this question).")
    lines += ["", "Draft answer (composed from the records):", _cut(draft, WRITER_DRAFT_CHARS), "",
              "Write the answer."]
    return [SystemMessage(system or WRITER_PROMPT), HumanMessage("\n".join(lines))]


# ----------------------------------------------------------------------------- every chat-model answer


def failures_text(failed: Sequence[Mapping[str, Any]]) -> str:
    """The look-ups that failed this turn, one line each (never left out of an answer)."""
    if not failed:
        return ""
    lines = ["**Could not look up**"]
    for item in failed:
        args = ", ".join(f"{k}={v!r}" for k, v in (item.get("args") or {}).items())
        error = " ".join(str(item.get("error", "")).split())
        lines.append(f"- {item['name']}({args}): {error[:300]}")
    return "\n".join(lines)


def truncation_note(info: Mapping[str, Any], limits: ChatLimits) -> str:
    """The closing line of an answer cut at a limit (empty when it was not)."""
    reason = info.get("finish_reason")
    if reason == "deadline":
        return f"_(The chat model's answer was cut at the {limits.deadline:g} s deadline, BIOMEDGPT_LLM_DEADLINE.)_"
    if reason in ("length", "max_tokens"):
        return (f"_(The chat model's answer was cut at the {limits.max_tokens}-token limit, "
                "BIOMEDGPT_LLM_MAX_TOKENS.)_")
    return ""


def finish_answer(text: str, *, sources: Mapping[str, dict], earlier: Mapping[str, dict],
                  evidence: Mapping[str, Evidence], names: Sequence[str], model_answers: Sequence[Mapping],
                  info: Mapping[str, Any], failed: Sequence[Mapping[str, Any]],
                  limits: ChatLimits) -> tuple[str, list[str]]:
    """A chat model's answer as shown: (text, ungrounded sentences).

    Grounding reads the model's own text (labels no record has do not count as citations); then unknown labels
    are marked and forgotten sources attached (``check_citations``); the unchecked-claims line goes first, failed
    look-ups and a truncation note last.
    """
    known = dict(evidence)
    for label in list(sources) + list(earlier):
        known.setdefault(label, Evidence())
    ungrounded = ungrounded_sentences(text, known, names)
    checked = check_citations(text, sources, model_answers, earlier=earlier)
    parts = [unchecked_note(ungrounded)] if ungrounded else []
    parts.append(checked)
    failures = failures_text(failed)
    if failures:
        parts.append(failures)
    note = truncation_note(info, limits)
    if note:
        parts.append(note)
    return "\n\n".join(parts), ungrounded


def question_names(state: Mapping[str, Any]) -> list[str]:
    """Entity names and values the conversation holds (for telling a fact from small talk)."""
    names = []
    for entity in list(state.get("entities") or []) + ([state["entity"]] if state.get("entity") else []):
        for key in ("value", "name"):
            value = entity.get(key) if isinstance(entity, Mapping) else None
            if isinstance(value, str) and 2 <= len(value) <= 80:
                names.append(value)
    return names


def reply_summary(message: AIMessage) -> dict:
    """What the turn's report says about one reply: finish reason, truncation, seconds, tokens."""
    info = reply_info(message)
    return {k: info.get(k) for k in ("finish_reason", "truncated", "seconds", "output_tokens") if k in info}
