"""biomedgpt.model: the BioMedGPT architecture (GIN + ESM-2 + adaptors + Llama-family LM).

Public API (filled in as modules land): ``featurize_smiles``, ``load_model``, ``load_official``.
This package imports nothing from tools/, training/ or agent/.
"""
