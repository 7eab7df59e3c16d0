"""biomedgpt.training: data readers, trainers (lm, align, qa), evaluation. Run via ``biomedgpt train`` / ``biomedgpt eval``."""
