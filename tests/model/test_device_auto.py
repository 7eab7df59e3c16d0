"""``device="auto"`` means one thing everywhere (issue 10): CUDA when torch sees a GPU, else CPU
(``core.settings.resolve_device``), for ``load_model`` and for training's ``pick_device``."""

from __future__ import annotations

import torch
from biomedgpt.core.settings import resolve_device


def test_load_model_accepts_auto_for_presets():
    from biomedgpt.model import load_model

    model = load_model("tiny", device="auto")
    expected = resolve_device("auto")
    assert next(model.parameters()).device.type == expected
    assert expected == ("cuda" if torch.cuda.is_available() else "cpu")


def test_pick_device_builds_on_the_core_meaning_of_auto():
    from biomedgpt.training.distributed import pick_device

    assert pick_device("auto").type == resolve_device("auto")
    assert pick_device("cpu") == torch.device("cpu")
    if torch.cuda.is_available():
        assert pick_device("auto", local_rank=0) == torch.device("cuda", 0)
        assert pick_device("cuda", local_rank=0) == torch.device("cuda", 0)
