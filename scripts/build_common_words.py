"""Build ``agent/data/common_words.txt.gz``: ``.venv/bin/python scripts/build_common_words.py`` (needs WordNet,
which ``make install`` puts in ``.venv/share/nltk_data``).

Why: question understanding takes a run of words the example table never uses as question words to be a name
("aspirin", "amyloid beta precursor protein"). A user's own words that the table happens not to hold ("quote",
"own calculation", "one-paragraph") were then looked up in PubChem as compounds. This list holds the English
words that are *not* names of substances: WordNet lemmas neither of whose two most common noun senses is a drug, a chemical
compound or element, a substance, a protein, an enzyme, a hormone, a vitamin or a molecule. The understanding
layer drops a run made only of such words and trims them from a run's ends; "aspirin", "caffeine", "insulin",
"glucose" or "water" are substances and stay names, and so does any word WordNet does not know ("huntingtin").
The list is shipped so that no question needs nltk or WordNet at run time.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

from nltk.corpus import wordnet as wn

OUT = Path(__file__).resolve().parents[1] / "agent" / "data" / "common_words.txt.gz"
#: Noun senses under any of these make a word a possible name of a substance.
SUBSTANCE_ROOTS = ("drug.n.01", "chemical_compound.n.01", "substance.n.01", "substance.n.07", "protein.n.01",
                   "enzyme.n.01", "organic_compound.n.01", "molecule.n.01", "hormone.n.01", "vitamin.n.01",
                   "chemical_element.n.01", "compound.n.02", "atom.n.01", "amino_acid.n.01", "nucleic_acid.n.01",
                   "antibiotic.n.01", "medicine.n.02", "toxin.n.01", "neurotransmitter.n.01", "gene.n.01")


#: Only a word's most common noun senses count: "go" is also slang for a drug, "as" for arsenic, yet they are
#: plain English words.
SENSES_CHECKED = 2


def main() -> None:
    roots = {wn.synset(name) for name in SUBSTANCE_ROOTS}
    substance_senses: dict = {}

    def is_substance(synset) -> bool:
        if synset not in substance_senses:
            ancestors = set(synset.closure(lambda s: s.hypernyms() + s.instance_hypernyms()))
            substance_senses[synset] = bool((ancestors | {synset}) & roots)
        return substance_senses[synset]

    words = set()
    for lemma in wn.all_lemma_names():
        if not re.fullmatch(r"[a-z]{2,}", lemma):
            continue  # multi-word lemmas, abbreviations with digits or capitals: never a plain English word here
        if any(is_substance(s) for s in wn.synsets(lemma, pos="n")[:SENSES_CHECKED]):
            continue
        words.add(lemma)
    OUT.write_bytes(gzip.compress(("\n".join(sorted(words)) + "\n").encode(), mtime=0))
    print(f"{len(words):,} words -> {OUT} ({OUT.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
