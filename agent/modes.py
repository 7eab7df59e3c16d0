"""Who picks the tools (``BIOMEDGPT_TOOL_CHOICE``) and what a chat model's answer must pass.

- ``router`` (default): the question-understanding layer (``agent/planner.py``) picks and runs the tools. With a
  chat model configured, the model writes only the answer's **opening sentence** (:func:`write_lead`: from the
  question alone, following worked examples, at most ``LEAD_MAX_TOKENS`` tokens, its first two sentences kept),
  and the router's composed answer (``agent/answer.py``: every fact a cited sentence or table row) follows it
  verbatim. Measured with the embedded SmolLM2-135M: when it wrote the whole answer from the records, comparison
  and literature answers lost their citations (1 of 5 kinds fully cited); writing only the lead, all 5 are. The
  lead is checked like any model text; a model that can write whole answers suits ``model`` mode.
- ``model``: the chat model calls the tools itself (capable models). It is offered only the tools relevant to
  what the question asks (:func:`tools_for_question`; all ten cost about 2,100 prompt tokens), is required to
  call one on the first step when the question names a molecule, protein or paper (where the API supports
  ``tool_choice``), and gets no tool at all for an off-domain question, a greeting or an unclear one.

Either way a chat model's text goes through :func:`finish_answer`: unknown citation labels are marked
(``check_citations``), every sentence of the model's that states a fact is checked against the records
(``agent/grounding``), an answer with unchecked claims opens with one line saying so, and a reply cut at
``BIOMEDGPT_LLM_MAX_TOKENS`` or at the deadline says so at its end.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from biomedgpt.agent.answer import check_citations
from biomedgpt.agent.backends import REPLY_KEY, ChatLimits, call_chat_model, reply_info
from biomedgpt.agent.grounding import (
    Evidence,
    evidence_from_state,
    split_sentences,
    unchecked_note,
    ungrounded_sentences,
)
from biomedgpt.agent.state import ARTIFACT_KINDS
from biomedgpt.tools.langchain_tools import TOOL_NAMES

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


# ----------------------------------------------------------------------------- router mode: the lead

#: What the model is asked to write in router mode: one opening sentence, from the question alone.
LEAD_PROMPT = ("You write the opening sentence of an answer. The facts follow it, from database records. Do not "
               "answer the question: only say what the records below are about.")
NO_RECORD_PROMPT = ("You write the opening sentence of an answer. No database record answers this question. Do not "
                    "answer it: only say that you have no records about it.")
#: Worked examples (user question, lead) the small model copies the form of: measured with the embedded
#: SmolLM2-135M, examples hold it to the form far better than instructions do.
LEAD_EXAMPLES = (
    ("What is the logP of caffeine?", "Here is what the records say about the logP of caffeine."),
    ("What does the protein P69905 do?", "Here is what the records say about the function of the protein P69905."),
    ("Which is heavier, ethanol or glucose?", "Here is what the records say about the weights of ethanol and glucose."),
)
NO_RECORD_EXAMPLES = (
    ("Who won the football world cup?", "I have no records about the football world cup."),
    ("What is the tallest mountain on Earth?", "I have no records about the tallest mountain on Earth."),
    ("Write a poem about the sea.", "I have no records about poems about the sea."),
)
HELP_EXAMPLES = (
    ("hello", "Hello! Here is what I can help with."),
    ("What can you do?", "Here is what I can help with."),
)
#: Tokens the lead may take, and how many of its sentences are kept (a small model may go on and on).
LEAD_MAX_TOKENS = 48
LEAD_SENTENCES = 2

_SEQUENCE = re.compile(r"\b[A-Z]{20,}\b")
_LONG_SMILES = re.compile(r"(?<![\w`])`?(?=[^\s`]*[()=#\[\]@])[^\s`]{12,}?`?(?=[?.,;:!]?(?:\s|$))")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"\u201d)]?\s+")


def _has_records(state: Mapping[str, Any]) -> bool:
    return any(state.get(kind) for kind in ARTIFACT_KINDS)


def lead_question(question: str) -> str:
    """The question as the lead's writer sees it: long SMILES and sequences become "the given molecule" and
    "the given sequence" (a 135M model garbles them when it copies them; the facts below show them exactly)."""
    text = _SEQUENCE.sub("the given sequence", " ".join(question.split()))
    return _LONG_SMILES.sub("the given molecule", text)


def lead_messages(question: str, state: Mapping[str, Any], system: str | None = None) -> list[BaseMessage]:
    """The prompt of the router-mode writer: a system line, worked examples and the question. The model sees
    neither the records nor the composed answer: it writes only the opening sentence, and every fact below it
    is the composed answer's, cited, carried verbatim (:func:`finish_answer`)."""
    if state.get("intent") == "help":
        prompt, examples = LEAD_PROMPT, HELP_EXAMPLES
    elif _has_records(state):
        prompt, examples = LEAD_PROMPT, LEAD_EXAMPLES
    else:
        prompt, examples = NO_RECORD_PROMPT, NO_RECORD_EXAMPLES
    messages: list[BaseMessage] = [SystemMessage(system or prompt)]
    for asked, lead in examples:
        messages += [HumanMessage(f"Question: {asked}"), AIMessage(lead)]
    messages.append(HumanMessage(f"Question: {lead_question(question)}"))
    return messages


#: The old name: router mode's writer prompt.
writer_messages = lead_messages


def _unlooped(text: str) -> str:
    """``text`` up to where it starts repeating itself ("… known as the protein that is known as the protein …"
    → "… known as the protein …"): a cut, looping lead shown once."""
    words = text.split()
    for start in range(len(words)):
        for size in range(2, 9):
            if start + 2 * size <= len(words) and words[start:start + size] == words[start + size:start + 2 * size]:
                return " ".join(words[:start + size]) + " …"
    return text


def first_sentences(text: str, count: int = LEAD_SENTENCES) -> tuple[str, bool]:
    """(the first ``count`` complete sentences of the first paragraph of ``text``, each once; whether text was
    left out). With no complete sentence the paragraph is returned as it is."""
    paragraph = next((p.strip() for p in re.split(r"\n\s*\n", text or "") if p.strip()), "")
    paragraph = " ".join(paragraph.split())
    pieces = [p.strip() for p in _SENTENCE_END.split(paragraph) if p.strip()]
    complete = [p for p in pieces if re.search(r"[.!?][\"\u201d)]?$", p)]
    if not complete or pieces[0] not in complete:
        looped = _unlooped(paragraph)
        return looped, looped != (text or "").strip()
    kept: list[str] = []
    for piece in pieces:
        if piece not in complete or len(kept) == count:
            break
        if piece not in kept:
            kept.append(piece)
    lead = " ".join(kept)
    return lead, lead != (text or "").strip()


#: Words a lead may use that the question need not: the worked examples' and the prompts' own, and the generic
#: nouns of the answers (their plural and inflected forms are read through :func:`_lemmas`).
_LEAD_VOCABULARY = frozenset("""here what the records record say says said about of and or the given molecule molecules
protein proteins sequence sequences compound compounds structure structures paper papers literature study studies
logp tpsa weight weights mass formula donor donors acceptor acceptors bond bonds ring rings amino acid acids residue
residues property properties similar similarity hello help have has no any
that this these those which who whom whose what where when why how is are was were be been being am do does did
for with from into onto upon by on in at to as of up out off over under than then so such not nor but and or if
it its they them their there we our you your he she his her him my me an a can could may might will would shall
should must all each some one both either neither other another more most less least very also only just""".split())
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-'][A-Za-z0-9]+)*")


def _lemmas(word: str) -> list[str]:
    out = [word]
    for suffix, replacement in (("ies", "y"), ("es", ""), ("s", ""), ("ed", ""), ("ed", "e"), ("ing", ""),
                                ("ing", "e"), ("est", ""), ("er", ""), ("'s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            out.append(word[: -len(suffix)] + replacement)
    return out


def unasked_names(lead: str, question: str, known: Sequence[str] = ()) -> list[str]:
    """The sentences of a router-mode lead that name something neither the question nor the records name: a
    word that is not plain English (``agent/understanding.common_words``: WordNet words that name no substance),
    not the lead's own vocabulary, and not in the question or a record's names ("… about the protein AMPK" for
    a bare sequence). The model writes the lead from the question alone, so such a name is its own claim."""
    from biomedgpt.agent.understanding import common_words

    english = common_words()
    allowed = {w.lower() for text in (question, *known) for w in _WORD.findall(text or "")}
    out = []
    for sentence in _SENTENCE_END.split(lead):
        for word in _WORD.findall(re.sub(r"\[[^\[\]\n]*\]", " ", sentence)):  # citations are checked apart
            lowered = word.lower()
            if len(lowered) < 3 and not any(c.isdigit() for c in lowered):
                continue
            forms = _lemmas(lowered)
            if any(f in allowed or f in _LEAD_VOCABULARY or f in english for f in forms):
                continue
            out.append(sentence.strip())
            break
    return out


def _copies_an_example(lead: str, question: str) -> bool:
    def norm(text: str) -> str:
        return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())

    examples = {norm(example): norm(asked) for asked, example in LEAD_EXAMPLES + NO_RECORD_EXAMPLES}
    return any(norm(sentence) in examples and examples[norm(sentence)] != norm(question)
               for sentence in _SENTENCE_END.split(lead) if sentence.strip())


def write_lead(model: Any, question: str, state: Mapping[str, Any], *, backend: str,
               limits: ChatLimits) -> AIMessage:
    """Router mode with a chat model: the model's opening sentence (at most ``LEAD_MAX_TOKENS`` tokens, its first
    ``LEAD_SENTENCES`` complete sentences kept). The reply's ``truncated`` says whether the kept text was cut at
    a limit (a lead of complete sentences is not, even when the model went on past them)."""
    cap = min(LEAD_MAX_TOKENS, limits.max_tokens)
    reply = call_chat_model(model, lead_messages(question, state), backend=backend, limits=limits, max_tokens=cap)
    raw = reply.content if isinstance(reply.content, str) else ""
    lead, _ = first_sentences(raw)
    if _copies_an_example(lead, question):
        lead = ""  # a worked example repeated for another question says nothing true: no answer from the model
    info = reply_info(reply)
    known = question_names(state) + [n for found in evidence_from_state(state).values() for n in found.names]
    info["unasked"] = unasked_names(lead, question, known)
    complete = bool(lead) and bool(re.search(r"[.!?][\"\u201d)]?$", lead))
    info.update(truncated=bool(info.get("truncated")) and not complete, max_tokens=cap)
    metadata = {**reply.response_metadata, REPLY_KEY: info}
    return AIMessage(content=lead, id=reply.id, response_metadata=metadata, usage_metadata=reply.usage_metadata)


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
    if info.get("truncated") is False:
        return ""
    reason = info.get("finish_reason")
    if reason == "deadline":
        return f"_(The chat model's answer was cut at the {limits.deadline:g} s deadline, BIOMEDGPT_LLM_DEADLINE.)_"
    if reason in ("length", "max_tokens"):
        cap = int(info.get("max_tokens") or limits.max_tokens)
        if cap < limits.max_tokens:
            return f"_(The chat model's opening sentence was cut at its {cap}-token limit in router mode.)_"
        return f"_(The chat model's answer was cut at the {cap}-token limit, BIOMEDGPT_LLM_MAX_TOKENS.)_"
    return ""


def finish_answer(text: str, *, sources: Mapping[str, dict], earlier: Mapping[str, dict],
                  evidence: Mapping[str, Evidence], names: Sequence[str], model_answers: Sequence[Mapping],
                  info: Mapping[str, Any], failed: Sequence[Mapping[str, Any]],
                  limits: ChatLimits, draft: str | None = None) -> tuple[str, list[str]]:
    """A chat model's answer as shown: (text, ungrounded sentences).

    Grounding reads the model's own text (labels no record has do not count as citations); the unchecked-claims
    line goes first. ``draft`` (router mode: the composed answer) follows the model's lead verbatim: its
    sentences are the records' own, cited by construction, and it already reports failed look-ups; unknown
    labels in the lead are marked. Without a draft (model mode) unknown labels are marked and forgotten sources
    attached (``check_citations``), failed look-ups follow. A truncation note comes last.
    """
    known = dict(evidence)
    for label in list(sources) + list(earlier):
        known.setdefault(label, Evidence())
    ungrounded = ungrounded_sentences(text, known, names)
    if draft is not None:  # router mode: a lead naming what neither the question nor the records name
        flagged = set(ungrounded) | set(info.get("unasked") or [])
        ungrounded = [s for s in split_sentences(text) if s in flagged]
    parts = [unchecked_note(ungrounded)] if ungrounded else []
    if draft is not None:
        parts.append(check_citations(text, {}, (), earlier={**earlier, **sources}))  # marks labels, adds nothing
        if draft.strip():
            parts.append(draft.strip())
    else:
        parts.append(check_citations(text, sources, model_answers, earlier=earlier))
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
