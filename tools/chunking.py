"""Documents cut into chunks for the literature store: ``chunk_document(doc, CHUNK_PRESETS["default"])``.

Text is split into sentences with NLTK's Punkt algorithm using fixed parameters (a list of biomedical
abbreviations, no downloaded model: the same split on every machine, so chunk ids are stable), and
sentences are packed into chunks of about ``max_words`` words with ``overlap_sentences`` of overlap.
A chunk's id is the sha256 of its source id and its normalised text, so re-ingesting adds nothing.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

from biomedgpt.core.errors import InputError
from biomedgpt.tools.documents import Document


@dataclass(frozen=True)
class ChunkConfig:
    """How documents are cut: about ``max_words`` words per chunk (all-MiniLM-L6-v2 reads 256 word
    pieces, roughly 180 words), repeating the last ``overlap_sentences`` sentences in the next chunk."""

    max_words: int = 120
    overlap_sentences: int = 1

    def __post_init__(self) -> None:
        if self.max_words < 10 or self.overlap_sentences < 0:
            raise InputError(f"chunking needs max_words >= 10 and overlap_sentences >= 0, got {self}")


CHUNK_PRESETS: dict[str, ChunkConfig] = {
    "default": ChunkConfig(),
    "small": ChunkConfig(max_words=60, overlap_sentences=1),
    "large": ChunkConfig(max_words=180, overlap_sentences=2),
}



@dataclass
class Chunk:
    id: str
    text: str
    embed_text: str  # title + text: the title helps every chunk of an abstract match its topic
    metadata: dict = field(default_factory=dict)



# Abbreviations that end with a period but do not end a sentence (lower-case, without the last period).
BIOMEDICAL_ABBREVIATIONS = (
    "e.g", "i.e", "et al", "al", "etc", "vs", "cf", "fig", "figs", "eq", "ref", "refs", "approx", "ca",
    "dr", "prof", "mr", "mrs", "ms", "no", "nos", "vol", "pp", "resp", "spp", "sp", "var", "subsp", "st",
    "min", "max", "mol", "wt", "conc", "incl", "dept", "univ", "inc", "ltd", "co", "jan", "feb", "mar",
    "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "approx", "avg", "b.i.d", "t.i.d",
    "q.d", "p.o", "i.v", "i.m", "s.c", "i.p",
)


@lru_cache(maxsize=1)
def _sentence_tokenizer():
    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer  # deferred: NLTK costs ~1 s to import

    params = PunktParameters()
    params.abbrev_types = set(BIOMEDICAL_ABBREVIATIONS)
    return PunktSentenceTokenizer(params)


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``; blank lines always end a sentence (paragraphs, Markdown headings)."""
    sentences: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = " ".join(paragraph.split())
        if paragraph:
            sentences.extend(s.strip() for s in _sentence_tokenizer().tokenize(paragraph) if s.strip())
    return sentences


def normalise(text: str) -> str:
    """The form that chunk ids hash: Unicode NFKC, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def chunk_id(source_id: str, text: str) -> str:
    return hashlib.sha256(f"{source_id}\x00{normalise(text)}".encode("utf-8")).hexdigest()


def chunk_document(doc: Document, config: ChunkConfig = CHUNK_PRESETS["default"]) -> list[Chunk]:
    """Pack sentences into chunks of about ``config.max_words`` words with sentence overlap."""
    pieces: list[str] = []
    for sentence in split_sentences(doc.text):
        words = sentence.split()
        if len(words) <= config.max_words:
            pieces.append(sentence)
        else:  # a run-on "sentence" (a table, a list): hard-wrap by words
            pieces.extend(" ".join(words[i:i + config.max_words]) for i in range(0, len(words), config.max_words))
    groups: list[list[str]] = []
    current: list[str] = []
    words = 0
    for sentence in pieces:
        n = len(sentence.split())
        if current and words + n > config.max_words:
            groups.append(current)
            overlap = config.overlap_sentences
            current = current[-overlap:] if overlap and len(current) > overlap else []
            words = sum(len(s.split()) for s in current)
        current.append(sentence)
        words += n
    if current:
        groups.append(current)

    chunks = []
    for number, group in enumerate(groups):
        text = " ".join(group)
        metadata = {"chunk": number, "source": doc.source, "source_id": doc.source_id}
        for key in ("pmid", "title", "year", "journal"):
            value = getattr(doc, key)
            if value not in (None, ""):
                metadata[key] = value
        embed_text = f"{doc.title}. {text}" if doc.title else text
        chunks.append(Chunk(id=chunk_id(doc.source_id, text), text=text, embed_text=embed_text, metadata=metadata))
    return chunks

