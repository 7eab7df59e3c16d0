"""Prompt formats of BioMedGPT: ``chat_prompt("What is it?", molecules=1)``, ``training_prompt("molecule", q, a)``.

Why these exact strings: the released BioMedGPT-10B was tuned on them, so any other wording costs
accuracy. Two formats exist:

- the released chat format (OpenBioMed v1 ``Conversation``)::

      {system}### Human: <molecule><moleculeHere></molecule> {question} ### Assistant: 

  multi-turn with ``###`` separators (``... ### Assistant: {answer} ### Human: {next} ### Assistant: ``);
  the mini preset uses it too, so there is one code path;
- the paper's Table 1 training templates (molecule and protein), split into the prompt and the answer
  so that the loss covers only the answer.

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
