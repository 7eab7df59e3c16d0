"""Prompt formats of BioMedGPT: ``chat_prompt("What is it?", molecules=1)``, ``training_prompt("molecule", q, a)``.

Why these exact strings: the released BioMedGPT-10B was tuned on them, so any other wording costs
accuracy. Two formats exist:

- the released chat format (OpenBioMed v1 ``Conversation``)::

      {system}### Human: <molecule><moleculeHere></molecule> {question} ### Assistant: 

  multi-turn with ``###`` separators (``... ### Assistant: {answer} ### Human: {next} ### Assistant: ``);
  the mini preset uses it too, so there is one code path;
- the paper's Table 1 training templates (molecule and protein), split into the prompt and the answer
  so that the loss covers only the answer;
- ``"chatml"``: the LM tokenizer's own chat template (``chatml_prompt``). The mini model keeps
  SmolLM2-135M-Instruct frozen, and a frozen LM follows only the format it was instruction-tuned on:
  in the ``###`` format it copies the context block's list layout and runs on, in its own format it
  answers one paragraph and ends the turn with EOS. ``BioMedGPTConfig.prompt_format`` says which
  format a model was trained in; ``task_prompt`` / ``conversation_prompt`` dispatch on it, so training,
  evaluation and ``ask`` all use the same one.

``<moleculeHere>`` / ``<proteinHere>`` are placeholders: ``BioMedGPT`` replaces each with the aligned
structure features. An optional ``context`` (e.g. retrieved reference descriptions from
``model/retrieval.py``) is inserted as plain text right before the question.
"""

from __future__ import annotations

from collections.abc import Sequence

SYSTEM_PROMPT = (
    "You are working as an excellent assistant in chemistry and molecule discovery. Below a human expert "
    "gives the representation of a molecule or a protein. Answer questions about it. "
)
MOLECULE_PLACEHOLDER = "<moleculeHere>"
PROTEIN_PLACEHOLDER = "<proteinHere>"
MOLECULE_TAG = f"<molecule>{MOLECULE_PLACEHOLDER}</molecule>"
PROTEIN_TAG = f"<protein>{PROTEIN_PLACEHOLDER}</protein>"
SEPARATOR = "###"
#: The captioning question of ChEBI-20 alignment and evaluation, and the tool's default molecule question:
#: a small model answers best the question it was trained on.
CAPTION_QUESTION = "Please describe this molecule."
ROLES = ("Human", "Assistant")

# The paper's Table 1 (wording verbatim; the placeholder is where the aligned features go).
TRAINING_TEMPLATES = {
    "molecule": (
        "You are working as an excellent assistant in chemistry and molecule discovery. Below a human gives "
        "the representation of a molecule. Answer a question about it. ###Human: "
        f"{MOLECULE_TAG} {{text_input}}. ###Assistant: {{text_output}}"
    ),
    "protein": (
        "You are working as an excellent assistant in biology. Below a human gives the representation of a "
        "protein. Answer a question about it. ###Human: "
        f"{PROTEIN_TAG} {{text_input}}. ###Assistant: {{text_output}}"
    ),
}


def structure_tags(molecules: int = 0, proteins: int = 0) -> str:
    """The literal tags for ``molecules`` molecules then ``proteins`` proteins, separated by spaces."""
    if molecules < 0 or proteins < 0:
        raise ValueError("the numbers of molecules and proteins cannot be negative")
    return " ".join([MOLECULE_TAG] * molecules + [PROTEIN_TAG] * proteins)


def human_message(question: str, molecules: int = 0, proteins: int = 0, context: str | None = None) -> str:
    """One Human turn: structure tags, then the optional context block, then the question."""
    parts = [structure_tags(molecules, proteins), (context or "").strip(), question.strip()]
    return " ".join(part for part in parts if part)


def chat_prompt(
    question: str,
    *,
    molecules: int = 0,
    proteins: int = 0,
    history: Sequence[tuple[str, str]] | None = None,
    context: str | None = None,
    system: str = SYSTEM_PROMPT,
) -> str:
    """The released chat format, ending with ``"### Assistant: "`` so the model writes the answer.

    ``history`` holds earlier (question, answer) turns. The structure tags go into the FIRST human turn
    (as in the released ``Conversation``, which appends the molecule before the first question);
    ``context`` goes into the current turn.
    """
    turns = list(history or [])
    text = system
    for index, (past_question, answer) in enumerate(turns):
        tags = (molecules, proteins) if index == 0 else (0, 0)
        text += f"{SEPARATOR} {ROLES[0]}: {human_message(past_question, *tags)} "
        text += f"{SEPARATOR} {ROLES[1]}: {answer.strip()} "
    tags = (0, 0) if turns else (molecules, proteins)
    text += f"{SEPARATOR} {ROLES[0]}: {human_message(question, *tags, context=context)} "
    text += f"{SEPARATOR} {ROLES[1]}: "
    return text


def training_prompt(kind: str, text_input: str, text_output: str, *, context: str | None = None) -> tuple[str, str]:
    """Table 1 template for ``kind`` ("molecule" | "protein") split as (prompt, answer).

    ``prompt + answer`` is the full template. A trailing period of ``text_input`` is dropped because the
    template adds one. ``context`` is inserted before ``text_input``.
    """
    if kind not in TRAINING_TEMPLATES:
        raise ValueError(f"training template kind {kind!r} is not one of {', '.join(TRAINING_TEMPLATES)}")
    question = text_input.strip()
    if question.endswith("."):
        question = question[:-1]
    if context and context.strip():
        question = f"{context.strip()} {question}"
    full = TRAINING_TEMPLATES[kind].format(text_input=question, text_output="")
    return full, text_output.strip()


PROMPT_FORMATS = ("biomedgpt", "chatml")
CHATML_SYSTEM = (
    "You are an expert assistant in chemistry and biology. The user gives the representation of a molecule "
    "or a protein; answer the question about it."
)


def _check_format(prompt_format: str) -> None:
    if prompt_format not in PROMPT_FORMATS:
        raise ValueError(f"prompt format {prompt_format!r} is not one of {', '.join(PROMPT_FORMATS)}")


def chatml_user_message(question: str, molecules: int = 0, proteins: int = 0, context: str | None = None) -> str:
    """One user turn of the ChatML format: the structure tags, the context block, the question, one per line."""
    parts = [structure_tags(molecules, proteins), (context or "").strip(), question.strip()]
    return "\n".join(part for part in parts if part)


def chatml_prompt(
    tokenizer,
    question: str,
    *,
    molecules: int = 0,
    proteins: int = 0,
    history: Sequence[tuple[str, str]] | None = None,
    context: str | None = None,
    system: str = CHATML_SYSTEM,
) -> str:
    """The tokenizer's chat template (``apply_chat_template``) with the structure tags in the first user
    turn and ``context`` in the current one, ending with the assistant header so the model answers."""
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError("the tokenizer has no chat template: use prompt format 'biomedgpt'")
    turns = list(history or [])
    messages = [{"role": "system", "content": system}]
    for index, (past_question, answer) in enumerate(turns):
        tags = (molecules, proteins) if index == 0 else (0, 0)
        messages.append({"role": "user", "content": chatml_user_message(past_question, *tags)})
        messages.append({"role": "assistant", "content": answer.strip()})
    tags = (0, 0) if turns else (molecules, proteins)
    messages.append({"role": "user", "content": chatml_user_message(question, *tags, context=context)})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def conversation_prompt(
    prompt_format: str,
    question: str,
    *,
    tokenizer=None,
    molecules: int = 0,
    proteins: int = 0,
    history: Sequence[tuple[str, str]] | None = None,
    context: str | None = None,
) -> str:
    """A chat prompt in ``prompt_format``: ``chat_prompt`` ("biomedgpt") or ``chatml_prompt`` ("chatml")."""
    _check_format(prompt_format)
    if prompt_format == "chatml":
        return chatml_prompt(tokenizer, question, molecules=molecules, proteins=proteins, history=history,
                             context=context)
    return chat_prompt(question, molecules=molecules, proteins=proteins, history=history, context=context)


def task_prompt(prompt_format: str, kind: str, question: str, *, context: str | None = None, tokenizer=None) -> str:
    """The prompt (without the answer) for one structure of ``kind`` and a question: the Table 1
    template ("biomedgpt", as in the paper's alignment stage) or the ChatML turn ("chatml").
    Training (``train align``) and evaluation (``eval``) both build their prompts here."""
    _check_format(prompt_format)
    if kind not in TRAINING_TEMPLATES:
        raise ValueError(f"training template kind {kind!r} is not one of {', '.join(TRAINING_TEMPLATES)}")
    if prompt_format == "biomedgpt":
        return training_prompt(kind, question, "", context=context)[0]
    counts = {"molecules": 1} if kind == "molecule" else {"proteins": 1}
    return chatml_prompt(tokenizer, question, context=context, **counts)
