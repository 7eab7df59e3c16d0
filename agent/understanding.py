"""What a question asks, learned from examples: ``understand("MW of aspirin?", context) -> Understanding``.

Use: ``from biomedgpt.agent.understanding import understand, UnderstandingContext``.

How (and why not phrase rules):
- Identifiers stay parsers: SMILES (RDKit), sequences, UniProt accessions, CIDs, InChIKeys, PMIDs
  (``agent/entities.recognise``).
- Everything else comes from the example table ``agent/data/intents.yaml`` (intent + requested
  attributes per example, entities written as ``{placeholders}``). A question is embedded with
  all-MiniLM-L6-v2 (ONNX Runtime, no torch: ``tools/minilm_onnx``) and compared with the training
  examples: the intent is the score-weighted vote of the nearest examples; the attributes come from
  the nearest single-attribute example of each clause ("MW and logP of X" → two clauses).
- The subject is the entity, never "the rest of the sentence": a name is a run of words that the
  example table never uses as question words (its vocabulary), so "what is X used for?" leaves X and
  "… and its InChIKey?" leaves nothing (a follow-up about the remembered subject).
- References ("it", "the second one", "both", "them", "the first two") pick from the conversation's
  recent entities; a new subject replaces the remembered one only when one was actually named.
- Below ``understanding_min_confidence`` with nothing recognised, the assistant says what it can do
  instead of guessing.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import re
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field

from biomedgpt.agent.entities import Entity, Match, classify_name, malformed_smiles, recognise
from biomedgpt.core.errors import InputError
from biomedgpt.core.settings import Settings, get_settings

INTENTS_FILE = Path(__file__).resolve().parent / "data" / "intents.yaml"

Intent = Literal["describe", "attribute", "compare", "similar", "similarity_pair", "literature", "model", "help",
                 "out_of_domain", "unclear", "invalid"]

#: Attributes a protein record answers; the others are molecule attributes.
PROTEIN_ATTRIBUTES = frozenset({"function", "gene", "organism", "length", "mass", "subcellular_location", "family",
                                "diseases", "go_terms", "pdb_structures", "keywords", "sequence", "reviewed",
                                "accession", "ec_number", "unlisted"})
#: The same question asked of the other kind of entity ("what does X do" of a drug is its description).
CROSS_KIND = {"molecule": {"function": "description", "mass": "molecular_weight", "sequence": "smiles",
                           "accession": "cid", "family": "description", "diseases": "description"},
              "protein": {"description": "function", "molecular_weight": "mass", "smiles": "sequence",
                          "cid": "accession", "exact_mass": "mass"}}

#: Regularisation of the intent and attribute classifiers, chosen on the dev split (see tests/agent/test_understanding.py).
INTENT_C = 16.0
ATTRIBUTE_C = 16.0
#: An attribute is asked when its one-vs-rest probability reaches this (chosen on the dev split).
ATTRIBUTE_MIN_PROBABILITY = 0.2
#: A clause of a question read alone asks a field when its probability reaches this (higher: a clause is short).
CLAUSE_MIN_PROBABILITY = 0.5
#: A question about names only (no structure) whose clause reads this surely as a request for papers ("any
#: data?", "cite papers pls") is a literature question.
CLAUSE_LITERATURE_MIN = 0.6
#: Where a question's clauses part ("logP and TPSA, and is it drug-like?").
_ATTRIBUTE_CLAUSE = re.compile(r"[,;?]|\band\b|\bplus\b|\balso\b|\bas well as\b", re.I)
#: Weight of the masked reading against the reading as written in the intent vote (chosen on the dev split).
MASKED_WEIGHT = 0.9
#: A question without identifiers whose reading as written is at least this sure it is off-domain is declined.
OUTSIDE_MIN = 0.6
#: ... nor one whose masked reading asks for papers this surely ("find papers comparing robotic versus
#: laparoscopic cholecystectomy"): the store may hold none, and the answer says so.
PAPERS_MIN = 0.5
#: A question that names a substance is declined as off-domain only when its masked reading is this sure too.
SUBSTANCE_OUTSIDE_MIN = 0.3
#: A question naming a condition is about the literature unless it asks a field at least this surely.
TOPIC_FIELD_SURE = 0.6
#: A question read as "describe" asks for a field instead when the field is this sure.
SURE_ATTRIBUTE = 0.85
#: A question that refers to the conversation ("how long is it?") but reads as off-domain is about the subject
#: when some field is asked at least this surely.
REFERRING_MIN_ATTRIBUTE = 0.5
#: Bump when the classifiers change, so cached weights are refitted.
CLASSIFIER_VERSION = 4
#: Most entities one question is about (keeps a plan short).
MAX_ENTITIES = 5

_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’\-+,()\[\]]*[A-Za-z0-9)\]]|[A-Za-z0-9]")
#: Function words a question may hold whatever the example table says.
_FUNCTION_WORDS = frozenset("""a an the of in on for to and or with by from at as is are was were be been being do does
did has have had can could would should will shall may might must what which who whom whose where when why how
this that these those it its it's they them their there here me my mine i you your we our us please pls plz
any some all each both either neither more most less least than then also too very just only about into over
under between among per vs versus via not no yes if so but than give show tell list find get let know need want
like one ones two three first second third last other another same such higher lower heavier lighter larger
go goes going went gone
smaller bigger greater highest lowest heaviest lightest largest smallest biggest greatest fewer fewest better best
worse worst refs ref lit pubs info value values number numbers count point data details 3d fetch retrieve search download query lookup look pull compute calculate""".split())
#: Words that continue a name ("acetic acid", "insulin receptor", "vitamin c").
_NAME_TAILS = frozenset("""acid acids receptor receptors kinase protein proteins chloride oxide hydrochloride sulfate
sodium potassium calcium ester factor precursor synthase subunit alpha beta gamma delta hormone channel
transporter dehydrogenase oxidase reductase a b c d e k 1 2 3 4""".split())
_NAME_HEADS = frozenset("vitamin alpha beta gamma protein enzyme compound drug molecule".split())
_KIND_WORDS = frozenset("protein enzyme compound drug molecule chemical structure gene".split())

_PLURAL_REF = re.compile(r"\b(?:them|they|their|these|those|both|each of them|all of them|all three|the two|"
                         r"the three|all|either)\b", re.I)
_SINGULAR_REF = re.compile(r"\b(?:it|its|it's|this|that|the (?:molecule|compound|drug|structure|chemical|protein|"
                           r"enzyme|sequence|receptor|kinase|entry|one))\b", re.I)
_ORDINAL = re.compile(r"\b(?:the\s+)?(first|second|third|fourth|fifth|last|former|latter|1st|2nd|3rd|4th|5th)"
                      r"(?:\s+(?:one|compound|molecule|drug|protein|entry|structure))?\b", re.I)
_WHICH_OF = re.compile(r"\bwhich(?:\s+one)?\b.*\b(?:\w+er|more|less|fewer|higher|lower|best|most|least)\b", re.I)
_OTHER = re.compile(r"\b(?:the\s+other(?:\s+one)?|the\s+rest)\b", re.I)
_FIRST_N = re.compile(r"\b(?:the\s+)?first\s+(two|three|four|2|3|4)\b", re.I)
_ORDINALS = {"first": 0, "1st": 0, "second": 1, "2nd": 1, "third": 2, "3rd": 2, "fourth": 3, "4th": 3,
             "fifth": 4, "5th": 4, "last": -1, "former": 0, "latter": -1}
_NUMBERS = {"two": 2, "three": 3, "four": 4, "2": 2, "3": 3, "4": 4}
_CLAUSE_SPLIT = re.compile(r"\s*(?:,|;|\band\b|&|\bplus\b|\bas well as\b|\balso\b|\bwith\b)\s*", re.I)
#: A comparison naming one entity compares it with the conversation's ("is it heavier than X", "compare with X").
_COMPARE_WITH_CONTEXT = re.compile(r"\b(?:it|its|them|they|this|that|these|those|both|compare|compared|versus|vs)\b",
                                   re.I)
_FRESH = re.compile(r"\b(?:latest|recent|newest|new papers|fetch|from pubmed|on pubmed|search pubmed)\b", re.I)
_DATABASE_PROTEIN = re.compile(r"\b(?:uniprot|swiss-?prot|trembl)\b", re.I)
_DATABASE_MOLECULE = re.compile(r"\bpubchem\b", re.I)
_UNIPROT_SEARCH = re.compile(r"\b(?:search|query|browse|scan)\s+(?:in\s+|on\s+|through\s+)?(?:the\s+)?"
                             r"(?:uniprot|swiss-?prot|trembl)\b|\buniprot(?:kb)?\s+search\b", re.I)
#: Words that make a name a condition or a process, not a compound or a protein ("myotonic dystrophy CTG
#: repeats", "Huntington disease"): "what is known about" such a name is a literature question.
_TOPIC_NAME = re.compile(r"\b(?:\w+(?:itis|oma|omas|pathy|pathies|emia|aemia|plasia|trophy|trophies)|diseases?|"
                         r"syndromes?|disorders?|cancers?|tumou?rs?|deficienc(?:y|ies)|mutations?|repeats?|"
                         r"sclerosis|ataxia|infections?|dementia|palsy|fibrosis|polyposis|"
                         r"hereditary|familial|congenital|autism|autistic|diabetes|obesity|asthma|epilepsy|"
                         r"schizophrenia|alzheimer'?s?|parkinson'?s?|huntington'?s?|leukodystrophy)\b", re.I)
#: ... unless the name says it is a molecule ("APC tumour suppressor", "BRCA1 protein").
_MOLECULAR_NAME = re.compile(r"\b(?:suppressors?|proteins?|receptors?|kinases?|enzymes?|factors?|genes?|"
                             r"channels?|antibod(?:y|ies)|drugs?|inhibitors?|compounds?)\b", re.I)


class Understanding(BaseModel):
    """The assistant's reading of one question: intent, requested attributes, and the entities it is about."""

    model_config = ConfigDict(extra="forbid")

    question: str
    intent: Intent
    attributes: list[str] = Field(default_factory=list)
    entities: list[Entity] = Field(default_factory=list)
    #: True when the entities come from the conversation ("it", "the second one").
    follow_up: bool = False
    #: The literature query (the question without its request words) for literature questions.
    topic: str = ""
    #: Cosine similarity of the closest example question (0–1).
    confidence: float = 0.0
    #: The example the decision rests on most (for ``--debug`` and the evaluation report).
    nearest_example: str = ""
    #: True when "latest/recent/from PubMed" asks for fresh papers, not the local store.
    fresh: bool = False
    #: Names found in the question (before they were resolved to entities).
    names: list[str] = Field(default_factory=list)
    #: For "search UniProt for X": the query for UniProt's own search (the router then calls uniprot_search).
    search: str = ""
    #: For ``intent == "invalid"``: what is wrong with the structure given, in one sentence.
    problem: str = ""

    @property
    def subjects(self) -> list[Entity]:
        return [e for e in self.entities if e.kind in ("molecule", "protein", "cid", "inchikey")]


class UnderstandingContext(BaseModel):
    """What understanding may know besides the question: the conversation's entities.

    ``entities`` are the recent entities in the order they were named (so "the second one" is the second
    one named); ``current`` is what the conversation is about now (what "it" refers to), default the last.
    """

    entities: list[Entity] = Field(default_factory=list)
    current: Entity | None = None


# ----------------------------------------------------------------------------- the example table


@dataclass
class ExampleTable:
    """The example questions with their embeddings (training split only) and the question vocabulary."""

    texts: list[str]
    intents: list[str]
    attributes: list[list[str]]
    vectors: np.ndarray
    vocabulary: frozenset[str]
    dev: list[dict] = field(default_factory=list)
    #: Softmax regression over intents and one-vs-rest regression over attributes (weights, biases, labels).
    intent_weights: np.ndarray = field(default_factory=lambda: np.zeros((0, 384), np.float32))
    intent_bias: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    intent_labels: list[str] = field(default_factory=list)
    attribute_weights: np.ndarray = field(default_factory=lambda: np.zeros((0, 384), np.float32))
    attribute_bias: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    attribute_labels: list[str] = field(default_factory=list)

    def intent_probabilities(self, vector: np.ndarray) -> dict[str, float]:
        logits = self.intent_weights @ vector + self.intent_bias
        exp = np.exp(logits - logits.max())
        return dict(zip(self.intent_labels, (exp / exp.sum()).tolist(), strict=True))

    def attribute_probabilities(self, vector: np.ndarray) -> dict[str, float]:
        probabilities = 1.0 / (1.0 + np.exp(-(self.attribute_weights @ vector + self.attribute_bias)))
        return dict(zip(self.attribute_labels, probabilities.tolist(), strict=True))


def _mask_placeholders(text: str) -> str:
    return _PLACEHOLDER.sub("X", text)


#: Stand-in names used to show the classifiers what in-domain questions look like with real names in them
#: (so "caffeine synonyms" is not mistaken for small talk). Kept apart from the names the tests and the
#: evaluation sets use.
_FILLERS = {
    # everyday chemicals that are also in food and drink, so "what is caffeine?" reads as a molecule question
    "mol": ["metoprolol", "warfarin", "dopamine", "cholesterol", "quercetin", "lidocaine", "serotonin", "citric acid",
            "caffeine", "ethanol", "glucose", "capsaicin", "sucrose", "menthol", "theobromine"],
    "smiles": ["CCN", "OCC(O)CO", "CC(C)O", "c1ccncc1"],
    "protein": ["lysozyme", "myoglobin", "CFTR", "KRAS", "alpha-synuclein", "catalase", "BRAF", "collagen alpha-1"],
    "acc": ["P68871", "P01308", "Q9Y6K9"],
    "seq": ["MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ"],
    "cid": ["5793", "3672"], "inchikey": ["RZVAJINKPMORJF-UHFFFAOYSA-N"], "pmid": ["9012345"],
    "topic": ["cystic fibrosis", "sickle cell anemia", "statin myopathy", "tau aggregation", "CRISPR screens"],
}


def _fill_placeholders(text: str, seed: int) -> str:
    """``text`` with each placeholder replaced by a stand-in name of its kind (deterministic per ``seed``)."""
    counter = iter(range(seed, seed + 100))

    def fill(match: re.Match) -> str:
        kind = re.sub(r"\d+$", "", match.group(1))
        values = _FILLERS.get(kind) or _FILLERS["mol"]
        return values[next(counter) % len(values)]

    return _PLACEHOLDER.sub(fill, text)


def load_rows(path: Path = INTENTS_FILE) -> list[dict]:
    """The example rows of the table (``split: dev`` rows included; callers choose)."""
    # libyaml's loader when present: the pure-Python one takes 0.2 s of every cold start for the same data
    data = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - safe
    return list(data["examples"])


def _vocabulary(rows: list[dict]) -> frozenset[str]:
    words: set[str] = set(_FUNCTION_WORDS)
    for row in rows:
        for word in re.findall(r"[A-Za-z][A-Za-z'\-]*", _PLACEHOLDER.sub(" ", row["text"])):
            words.add(word.lower())
    return frozenset(words)


_TABLE_LOCK = threading.Lock()


def _train(vectors: np.ndarray, intents: list[str], attributes: list[list[str]]) -> dict[str, np.ndarray]:
    """Fit the two classifiers with scikit-learn (only when the cache is missing: sklearn costs ~1 s to import)."""
    from sklearn.linear_model import LogisticRegression  # deferred: training happens once per table
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.preprocessing import MultiLabelBinarizer

    intent_model = LogisticRegression(C=INTENT_C, max_iter=3000).fit(vectors, intents)
    rows = [i for i, a in enumerate(attributes) if a]
    binarizer = MultiLabelBinarizer().fit([attributes[i] for i in rows])
    attribute_model = OneVsRestClassifier(LogisticRegression(C=ATTRIBUTE_C, max_iter=3000)).fit(
        vectors[rows], binarizer.transform([attributes[i] for i in rows]))
    return {
        "intent_weights": intent_model.coef_.astype(np.float32),
        "intent_bias": intent_model.intercept_.astype(np.float32),
        "intent_labels": np.array(intent_model.classes_, dtype=str),
        "attribute_weights": np.stack([e.coef_[0] for e in attribute_model.estimators_]).astype(np.float32),
        "attribute_bias": np.array([e.intercept_[0] for e in attribute_model.estimators_], dtype=np.float32),
        "attribute_labels": np.array(binarizer.classes_, dtype=str),
    }


@lru_cache(maxsize=2)
def _table(path: str, digest: str, home: str) -> ExampleTable:
    """Embed the table and fit the classifiers once; both are cached in ``BIOMEDGPT_HOME`` keyed by the file's hash."""
    from biomedgpt.core.files import atomic_write_bytes
    from biomedgpt.tools.minilm_onnx import embed_texts

    rows = load_rows(Path(path))
    train = [r for r in rows if r.get("split") != "dev"]
    dev = [r for r in rows if r.get("split") == "dev"]
    texts = [_mask_placeholders(r["text"]) for r in train]
    intents = [r["intent"] for r in train]
    attributes = [list(r.get("attributes") or []) for r in train]
    # The classifiers also learn each example as written with stand-in names (see _FILLERS).
    filled = [_fill_placeholders(r["text"], i) for i, r in enumerate(train)]
    cache = Path(home) / "models" / f"intents-{digest[:16]}-v{CLASSIFIER_VERSION}.npz"
    arrays: dict[str, np.ndarray] | None = None
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as loaded:
            arrays = {key: loaded[key] for key in loaded.files}
        if arrays.get("vectors", np.zeros(0)).shape[0] != len(texts):
            arrays = None
    if arrays is None:
        vectors = embed_texts(texts)
        named = embed_texts(filled)
        arrays = {"vectors": vectors, **_train(np.concatenate([vectors, named]), intents + intents,
                                                 attributes + attributes)}
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        atomic_write_bytes(cache, buffer.getvalue())
    return ExampleTable(texts=texts, intents=intents, attributes=attributes, vectors=arrays["vectors"],
                        vocabulary=_vocabulary(rows), dev=dev,
                        intent_weights=arrays["intent_weights"], intent_bias=arrays["intent_bias"],
                        intent_labels=[str(x) for x in arrays["intent_labels"]],
                        attribute_weights=arrays["attribute_weights"], attribute_bias=arrays["attribute_bias"],
                        attribute_labels=[str(x) for x in arrays["attribute_labels"]])


@lru_cache(maxsize=4)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    """The table file's hash, read again only when its size or modification time changes (not per question)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def example_table(settings: Settings | None = None, path: Path = INTENTS_FILE) -> ExampleTable:
    settings = settings or get_settings()
    stat = path.stat()
    digest = _digest(str(path), stat.st_size, stat.st_mtime_ns)
    with _TABLE_LOCK:
        return _table(str(path), digest, str(settings.home))


# ----------------------------------------------------------------------------- names


@dataclass
class _Token:
    text: str
    start: int
    end: int


def _tokens(text: str) -> list[_Token]:
    out = []
    for m in re.finditer(r"\S+", text):
        raw = m.group()
        stripped = raw.strip("?!.,;:\"'`“”‘’")
        if stripped.endswith("'s") or stripped.endswith("’s"):
            stripped = stripped[:-2]
        if re.fullmatch(r"\([^()]+\)", stripped):
            stripped = stripped[1:-1]  # "(ethanol)"
        if stripped.startswith("(") and stripped.count("(") > stripped.count(")"):
            stripped = stripped[1:]
        if stripped.endswith(")") and stripped.count(")") > stripped.count("("):
            stripped = stripped[:-1]
        if not stripped:
            continue
        start = m.start() + raw.find(stripped)
        out.append(_Token(stripped, start, start + len(stripped)))
    return out


def _is_question_word(word: str, vocabulary: frozenset[str]) -> bool:
    low = word.lower()
    if low in vocabulary:
        return True
    if low.endswith("s") and low[:-1] in vocabulary or low.endswith("ies") and low[:-3] + "y" in vocabulary:
        return True
    if len(low) >= 6 and re.fullmatch(r"[a-z\-']+", low) and difflib.get_close_matches(low, vocabulary, n=1,
                                                                                          cutoff=0.86):
        return True  # a typo of a question word ("moleculr", "weigth") is not a name
    return False


COMMON_WORDS_FILE = INTENTS_FILE.parent / "common_words.txt.gz"


@lru_cache(maxsize=1)
def common_words() -> frozenset[str]:
    """English words that name no substance (``scripts/build_common_words.py``, from WordNet)."""
    import gzip

    return frozenset(gzip.decompress(COMMON_WORDS_FILE.read_bytes()).decode().split())


def is_common_word(word: str) -> bool:
    """True for a plain English word that names no substance ("quote", "calculation", "safe"); never for a
    word written with capitals inside or digits ("APC", "BRCA1", "pH") or one WordNet files as a substance."""
    if not re.fullmatch(r"[A-Za-z][a-z]+(?:-[a-z]+)*", word):
        return False
    words = common_words()
    for part in word.lower().split("-"):
        forms = {part}
        if part.endswith("s"):
            forms |= {part[:-1], part[:-2] if part.endswith("es") else part, part[:-3] + "y" if part.endswith("ies")
                      else part}
        if part.endswith("ed"):
            forms |= {part[:-2], part[:-1]}
        if part.endswith("ing"):
            forms |= {part[:-3], part[:-3] + "e"}
        if part.endswith("ly"):
            forms.add(part[:-2])
        if not forms & words:
            return False
    return True


def _name_core(name: str) -> str:
    """``name`` without plain English words at its end ("creatine safe" -> "creatine"); "" when it is only
    such words ("own calculation", "one-paragraph", "quote"). Words that continue a name ("receptor", "acid")
    stay, and so do the words before a name's last substance word ("acetic acid", "myotonic dystrophy CTG")."""
    words = name.split()
    keep = lambda w: not is_common_word(w) or w.lower() in _NAME_TAILS | _NAME_HEADS  # noqa: E731
    while words and not keep(words[-1]):
        words.pop()
    if words and not any(keep(w) for w in words):
        return ""
    return " ".join(words)


def find_names(text: str, vocabulary: frozenset[str]) -> list[tuple[str, int, int]]:
    """Runs of words the example table never uses as question words: the names a question is about."""
    tokens = [t for t in _tokens(text) if "\u2063" not in t.text]
    names: list[tuple[str, int, int]] = []
    run: list[_Token] = []

    def close() -> None:
        if run:
            names.append((text[run[0].start:run[-1].end], run[0].start, run[-1].end))
            run.clear()

    for i, token in enumerate(tokens):
        low = token.text.lower()
        gap = run and text[run[-1].end:token.start].strip() not in ("", "-")
        if gap:
            close()
        if not _is_question_word(token.text, vocabulary) and re.search(r"[A-Za-z]", token.text):
            if not run and i > 0 and tokens[i - 1].text.lower() in _NAME_HEADS - _KIND_WORDS and \
                    not text[tokens[i - 1].end:token.start].strip():
                run.append(tokens[i - 1])
            run.append(token)
        elif run and low in _NAME_TAILS:
            run.append(token)
        else:
            close()
    close()
    return names


# ----------------------------------------------------------------------------- references


def _resolve_references(question: str, context: UnderstandingContext) -> list[Entity]:
    recent = [e for e in context.entities if e.kind in ("molecule", "protein", "cid", "inchikey")]
    if not recent:
        return []
    first_n = _FIRST_N.search(question)
    if first_n:
        return [e.model_copy(update={"from_context": True}) for e in recent[:_NUMBERS[first_n.group(1).lower()]]]
    ordinal = _ORDINAL.search(question)
    if ordinal and ordinal.group(1).lower() in _ORDINALS:
        index = _ORDINALS[ordinal.group(1).lower()]
        if -len(recent) <= index < len(recent):
            return [recent[index].model_copy(update={"from_context": True})]
    if _PLURAL_REF.search(question) and len(recent) > 1:
        return [e.model_copy(update={"from_context": True}) for e in recent[-MAX_ENTITIES:]]
    if _WHICH_OF.search(question) and len(recent) > 1:  # "which one is heavier?": the ones named, compared
        return [e.model_copy(update={"from_context": True}) for e in recent[-MAX_ENTITIES:]]
    if _OTHER.search(question) and len(recent) > 1:  # "and the other one?": the one named that is not "it"
        others = [e for e in recent if context.current is None or (e.kind, e.value) != (context.current.kind,
                                                                                          context.current.value)]
        if others:
            return [others[-1].model_copy(update={"from_context": True})]
    if context.current is not None and not re.search(
            r"\b(?:protein|enzyme|sequence|receptor|kinase|molecule|compound|drug|structure|chemical)\b", question, re.I):
        return [context.current.model_copy(update={"from_context": True})]
    if re.search(r"\b(?:protein|enzyme|sequence|receptor|kinase)\b", question, re.I):
        for entity in reversed(recent):
            if entity.kind == "protein":
                return [entity.model_copy(update={"from_context": True})]
    if re.search(r"\b(?:molecule|compound|drug|structure|chemical)\b", question, re.I):
        for entity in reversed(recent):
            if entity.kind != "protein":
                return [entity.model_copy(update={"from_context": True})]
    return [recent[-1].model_copy(update={"from_context": True})]


# ----------------------------------------------------------------------------- classification


def _attributes(probabilities: dict[str, float], table: ExampleTable, clauses: list[np.ndarray] = ()) -> list[str]:
    """The attributes asked: those the whole question asks (``probabilities``), then those a clause of it asks on
    its own.

    Why clauses too: in "what are the logP and TPSA of X, and is it drug-like?" the last field's share of the
    whole question's vector is small, so it falls under the threshold; read alone, its clause is clear."""
    ranked = sorted(probabilities, key=probabilities.get, reverse=True)
    found = [a for a in ranked if probabilities[a] >= ATTRIBUTE_MIN_PROBABILITY]
    for clause in clauses:
        scores = table.attribute_probabilities(clause)
        found += [a for a in sorted(scores, key=scores.get, reverse=True)
                  if scores[a] >= CLAUSE_MIN_PROBABILITY and a not in found]
    return found


def _clauses(masked: str) -> list[str]:
    """The parts of a question that may each ask for a field ("…, and is it drug-like?"); [] for one part."""
    parts = [p.strip() for p in _ATTRIBUTE_CLAUSE.split(masked)]
    parts = [p for p in parts if any(w.lower() not in _FUNCTION_WORDS and w != "X" for w in _WORD.findall(p))]
    return parts if len(parts) > 1 else []


def _mask(text: str, spans: list[tuple[int, int]]) -> str:
    for start, end in sorted(spans, reverse=True):
        text = text[:start] + "X" + text[end:]
    return re.sub(r"\s+", " ", text).strip()


_QUOTE_CHARS = "?!,;:.\"'`“”‘’"
#: An identifier the question names as such ("accession 12345XYZ", "this sequence: MKT123@@"): when the
#: recognisers found none there, what was written is reported as unreadable rather than looked up as a name.
_LABELLED_ID = re.compile(r"\b(?P<what>accession(?:\s+(?:number|no\.?|id))?|uniprot(?:kb)?(?:\s+(?:entry|id))?|sequence)"
                          r"\s*(?:is|=|:)?\s*"
                          r"(?P<value>(?=\S*[0-9@#$%^&*!<>=|])[^\s]{6,})", re.I)


def _malformed_structure(question: str, matches: list) -> str:
    """The one-sentence problem of a malformed SMILES or protein sequence in ``question``, or ""."""
    from biomedgpt.core.chem import parse_smiles, try_parse_smiles, validate_sequence
    from biomedgpt.core.errors import InputError as Invalid

    for token in re.finditer(r"\S+", question):
        text = token.group().strip(_QUOTE_CHARS)
        if text.startswith("(") and text.endswith(")") and try_parse_smiles(text[1:-1]) is not None:
            text = text[1:-1]  # "naproxen (COc1ccc2cc(ccc2c1)[C@H](C)C(=O)O)": a SMILES given in parentheses
        inside = [m for m in matches if m.start < token.end() and token.start() < m.end]
        if inside and not (len(text) >= 20 and all(m.end - m.start < len(text) for m in inside)):
            continue  # a recognised identifier (an accession, a whole sequence, a valid SMILES)
        try:
            if malformed_smiles(text):
                parse_smiles(text)
            if len(text) >= 20 and re.fullmatch(r"[A-Z0-9*]+", text) and sum(c.isalpha() for c in text) >= 0.8 * len(text):
                validate_sequence(text)  # a pasted sequence with letters no protein has
        except Invalid as error:
            return f"I can't read that structure: {error}."
    labelled = _LABELLED_ID.search(question)
    if labelled and not any(m.start <= labelled.start("value") < m.end for m in matches):
        value = labelled.group("value").strip(_QUOTE_CHARS)
        if labelled.group("what").lower().startswith(("accession", "uniprot")):
            return (f"I can't read that accession: {value!r} is not a UniProt accession (they look like P05067 or "
                    f"A0A023GPI8).")
        if len(value) >= 6 and re.search(r"[^A-Za-z*\s]", value):
            try:
                validate_sequence(value)
            except Invalid as error:
                return f"I can't read that sequence: {error}."
    return ""


def understand(question: str, context: UnderstandingContext | None = None, *,
               settings: Settings | None = None) -> Understanding:
    """Read one question: its intent, the attributes it asks for, and the entities it is about.

    ``question`` must be the user's own text; ``context`` holds the conversation's recent entities.
    Raises ``InputError`` for an empty or over-long question (before any model is loaded).
    """
    settings = settings or get_settings()
    if not isinstance(question, str):
        raise InputError(f"the question must be text, not {type(question).__name__}")
    question = question.strip()
    if not question:
        raise InputError("the question is empty: ask about a molecule (SMILES or name), a protein "
                         "(sequence, accession or name) or a literature topic")
    if len(question) > settings.max_question_chars:
        raise InputError(f"the question has {len(question):,} characters; the most accepted is "
                         f"{settings.max_question_chars:,} (BIOMEDGPT_MAX_QUESTION_CHARS)")
    context = context or UnderstandingContext()
    table = example_table(settings)

    matches = recognise(question)
    problem = _malformed_structure(question, matches)
    if problem:  # a structure RDKit or the sequence rules reject: say why, look nothing up
        return Understanding(question=question, intent="invalid", problem=problem)
    blanked = question
    for match in sorted(matches, key=lambda m: m.start, reverse=True):
        blanked = blanked[:match.start] + "\u2063" * (match.end - match.start) + blanked[match.end:]
    names = find_names(blanked, table.vocabulary)
    id_spans = [(m.start, m.end) for m in matches]
    name_spans = [(s, e) for _, s, e in names]

    masked = _mask(question, id_spans + name_spans)
    with_names = _mask(question, id_spans)
    from biomedgpt.tools.minilm_onnx import embed_texts

    clauses = _clauses(masked)
    texts = [masked, with_names, *clauses]
    distinct = list(dict.fromkeys(texts))  # often all one text (no names, one clause): embedded once
    embedded = dict(zip(distinct, embed_texts(distinct, settings)))
    vector, plain, *clause_vectors = (embedded[text] for text in texts)
    similarities = np.maximum(table.vectors @ vector, table.vectors @ plain)
    best = int(np.argmax(similarities))
    confidence = float(similarities[best])
    # Both readings vote: with names masked (what is asked) and as written (masking "world cup" or "Roman
    # Empire" as names would hide that a question is off-domain); the classifier learned both forms.
    masked_p, written_p = table.intent_probabilities(vector), table.intent_probabilities(plain)
    probabilities = {k: MASKED_WEIGHT * masked_p[k] + (1 - MASKED_WEIGHT) * written_p[k] for k in masked_p}
    intent = max(probabilities, key=probabilities.get)
    asked = table.attribute_probabilities(vector)  # the fields the whole question asks, read once
    surest_field = max(asked.values())
    referring = bool(context.entities) and bool(_SINGULAR_REF.search(question) or _PLURAL_REF.search(question)
                                                  or _ORDINAL.search(question) or _OTHER.search(question))
    # Read as written it is small talk or trivia, whatever the names are ("who won the world cup"); but a
    # question about substances only ("what is nicotine?": every name a word that names a substance) is not
    # declined because the substance is also in a cigarette or a drink: then the reading with names masked must
    # lean off-domain too.
    substance_named = bool(names) and all(
        all(re.fullmatch(r"[A-Za-z][a-z]{2,}", w) and not is_common_word(w) for w in n.split()) for n, _, _ in names)
    if not matches and written_p["out_of_domain"] >= OUTSIDE_MIN and masked_p["literature"] < PAPERS_MIN and (
            not substance_named or masked_p["out_of_domain"] >= SUBSTANCE_OUTSIDE_MIN):
        intent = "out_of_domain"
    if referring and intent in ("out_of_domain", "unclear"):
        # "how long is it?" after a protein: a question about the conversation's subject, however short; but
        # "is it raining in Paris?" stays off-domain (no field of a record is asked)
        if surest_field >= REFERRING_MIN_ATTRIBUTE:
            intent = "attribute"

    glued: dict[str, Match] = {}
    for n, start, end in names:
        for m in matches:
            if m.entity.is_structure and (end <= m.start and re.fullmatch(r"\s*[(:=]?\s*", question[end:m.start])
                                          or m.end <= start and re.fullmatch(r"\s*\(\s*", question[m.end:start])):
                glued[n] = m
    named_structures = {id(m): _name_core(n) for n, m in glued.items()}
    structured = [m.entity.model_copy(update={"name": named_structures[id(m)]}) if id(m) in named_structures
                  else m.entity for m in matches]
    subjects = [e for e in structured if e.kind in ("molecule", "protein", "cid", "inchikey")]
    pmids = [e for e in structured if e.kind == "pmid"]

    attributes: list[str] = []
    unsure_compare = intent == "compare" and probabilities["compare"] < 0.5
    if (intent == "describe" or unsure_compare) and not subjects and not pmids and any(
            table.intent_probabilities(v)["literature"] >= CLAUSE_LITERATURE_MIN for v in clause_vectors):
        intent = "literature"  # "… in myotonic dystrophy? I'd like a few references.": a clause asks for papers
    if intent == "describe" and surest_field >= SURE_ATTRIBUTE:
        intent = "attribute"  # "List some synonyms for aspirin (trade names / other names)": a field, surely
    if intent in ("attribute", "compare", "similar"):
        attributes = _attributes(asked, table, clause_vectors)
        if intent == "attribute" and not attributes:
            intent = "describe"

    entities: list[Entity] = list(subjects)
    # A run of plain English words only ("own calculation", "quote") is the user's wording, not a name to look
    # up (it stays masked for the classifiers, which learned names and wording apart).
    # "naproxen (COc1…)" or "COc1… (naproxen)": the name and the structure beside it are one molecule, and the
    # structure says exactly which; the name is not looked up as a second one.
    name_texts = [core for raw, _, _ in names if raw not in glued and (core := _name_core(raw))]
    # "morphine vs codeine? <SMILES> and <SMILES>": as many names as structures, compared: the names, in order,
    # are what the structures are called, not more molecules to look up.
    unnamed = [i for i, e in enumerate(entities) if e.source == "smiles" and not e.name]
    if intent in ("compare", "similarity_pair") and len(unnamed) >= 2 and len(name_texts) == len(unnamed):
        for i, name in zip(unnamed, name_texts, strict=True):
            entities[i] = entities[i].model_copy(update={"name": name})
        name_texts = []
    # A question that gives a structure is about it; other words next to it ("zwitterion", "proteomics hit")
    # are not names to look up, unless the question compares several things.
    use_names = not subjects or intent in ("compare", "similarity_pair")
    if intent not in ("literature", "out_of_domain", "help") and use_names:
        hint = None
        if _DATABASE_PROTEIN.search(question) or any(a in PROTEIN_ATTRIBUTES - {"unlisted"} for a in attributes):
            hint = "protein"
        elif _DATABASE_MOLECULE.search(question) or any(a not in PROTEIN_ATTRIBUTES for a in attributes):
            hint = "molecule"  # "what's the logP of XYZ123": a molecule field, so a molecule name
        for name in name_texts:
            clean = re.sub(r"^(?:the|a|an)\s+", "", name, flags=re.I).strip()
            words = clean.lower().split()
            if not clean or all(w in _KIND_WORDS for w in words):
                continue
            entities.append(Entity(kind=classify_name(clean, hint), value=clean, source="name"))
    follow_up = False
    if not entities and intent not in ("literature", "out_of_domain", "help"):
        referred = _resolve_references(question, context)
        if referred:
            entities, follow_up = referred, True
    if intent in ("describe", "attribute") and len(entities) > 1 and not follow_up:
        intent = "compare" if not attributes else intent
    if intent == "compare" and len(entities) < 2 and not follow_up:
        referred = _resolve_references(question, context) if _COMPARE_WITH_CONTEXT.search(question) else []
        if referred:
            entities = list(dict.fromkeys(referred + entities))
        elif entities:
            intent = "attribute" if attributes else "describe"

    # names that say they are molecules ("the APC tumour suppressor") are not conditions
    molecular_spans = [(a, b) for n, a, b in names if _MOLECULAR_NAME.search(n)]
    no_sure_field = (intent in ("describe", "compare") and not attributes
                     or intent == "attribute" and surest_field < TOPIC_FIELD_SURE)
    if (no_sure_field
            and not subjects and not follow_up
            and (_TOPIC_NAME.search(_mask(question, id_spans + molecular_spans)) or name_texts and all(
                _TOPIC_NAME.search(n) and not _MOLECULAR_NAME.search(n) for n in name_texts))):
        # "what is known about CTG repeats in myotonic dystrophy?", "role of VHL in renal cell carcinoma": a
        # question that names a condition and asks no field is about the literature, not one record
        intent, entities, attributes = "literature", [], []
    if intent in ("out_of_domain", "help") and subjects:
        intent = "describe"  # a question that holds a structure is about it, whatever else it says
    if intent == "similarity_pair" and len(entities) == 1 and entities[0].source == "smiles" and not follow_up:
        intent = "similar"  # "atenolol <SMILES>: nearest neighbour + tanimoto": one structure, its neighbours
    if confidence < settings.understanding_min_confidence and not subjects and not pmids and not follow_up:
        if intent not in ("out_of_domain", "help"):
            intent = "unclear"
            entities = []
    search = ""
    if _UNIPROT_SEARCH.search(question) and intent not in ("literature", "out_of_domain", "help") and not subjects:
        found = [n for n in name_texts if not _DATABASE_PROTEIN.fullmatch(n)]
        search = " ".join(found).strip()
        if search:  # "search uniprot for glucose: top hits?": UniProt's ranking, not one entry by name
            intent, entities = "describe", []
    topic = question if intent == "literature" else ""
    return Understanding(question=question, intent=intent, attributes=attributes,
                         entities=(entities + pmids)[:MAX_ENTITIES + len(pmids)], follow_up=follow_up, topic=topic,
                         confidence=round(confidence, 4), nearest_example=table.texts[best],
                         fresh=bool(_FRESH.search(question)) and intent == "literature", search=search,
                         names=[n for n, _, _ in names] if intent == "literature" else name_texts)
