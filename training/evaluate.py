"""The evaluation harness, one import: ``eval_captioning(model, "chebi20/test.txt", retrieval="only")`` → metrics dict.

What ``biomedgpt eval`` and scripts call; each job lives in its own module and is re-exported here:

* ``training/eval_structures.py``: questions about one structure — captioning (ChEBI-20), protein QA
  (UniProtQA) and scoring a MolT5-format predictions file; retrieval ``on`` / ``off`` / ``only``;
* ``training/eval_mcqa.py``: multiple choice (MedMCQA, PubMedQA, MedQA-USMLE) by generation or by
  option log-likelihood;
* ``training/eval_common.py``: what they share — the model, batched generation, the resumable
  prediction TSV;
* ``training/metrics.py``: the published scoring protocols.
"""

from __future__ import annotations

from biomedgpt.training.eval_common import (  # noqa: F401 - re-exported
    MAX_NEW_TOKENS, PredictionFile, generate_batch, resolve_model,
)
from biomedgpt.training.eval_mcqa import (  # noqa: F401 - re-exported
    MCQA_CANDIDATES, MCQA_METHODS, causal_lm_of, eval_mcqa, mcqa_candidates, mcqa_prompt, predict_mcqa,
)
from biomedgpt.training.eval_structures import (  # noqa: F401 - re-exported
    CAPTION_HEADER, PROTEIN_HEADER, PROTEIN_RETRIEVAL_MODES, PROTEIN_SPLITS, RETRIEVAL_MODES, AlignmentTransfer,
    default_retrieval, eval_captioning, eval_protein_qa, score_predictions, scoring_tokenizer,
)
from biomedgpt.training.metrics import (  # noqa: F401 - re-exported
    BERT_BASE_UNCASED_SIZE, PROTOCOLS, SCIBERT_SIZE, SCIBERT_VOCAB, TEXT_KEYS, caption_metrics, choose_by_loglik,
    exact_match, extract_choice, load_text_tokenizer, mcqa_accuracy, normalize_answer, option_logprobs,
    protein_qa_metrics, rouge, wordnet_status, wordpieces,
)
