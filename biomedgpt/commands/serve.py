"""``biomedgpt serve-llm [--port N]``: the embedded SmolLM2 as an OpenAI-compatible chat server, offline.

It converts the model once if needed (``model/lm.ensure_smollm2``: the converted folder carries the tool-aware
chat template), prints the two settings that point biomedgpt at it, and becomes ``transformers serve`` on
127.0.0.1 (the process is replaced, so Ctrl-C or a signal stops the server itself). Needs the ``serve`` extra:
``pip install 'biomedgpt[serve]'`` (fastapi, starlette, sse-starlette).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys

import typer

#: What ``transformers serve`` needs beyond the project's dependencies (the ``serve`` extra).
SERVE_MODULES = {"fastapi": "fastapi", "starlette": "starlette", "sse_starlette": "sse-starlette",
                 "uvicorn": "uvicorn"}
DEFAULT_PORT = 8000


def missing_serve_packages() -> list[str]:
    return [package for module, package in SERVE_MODULES.items() if importlib.util.find_spec(module) is None]


def serve_command(folder: str, port: int, device: str) -> list[str]:
    """The ``transformers serve`` command line for a model folder (float32 on CPU, bfloat16 on a GPU)."""
    dtype = "float32" if device == "cpu" else "bfloat16"
    return [sys.executable, "-m", "transformers.cli.transformers", "serve", folder, "--host", "127.0.0.1",
            "--port", str(port), "--device", device, "--dtype", dtype]


def settings_lines(folder: str, port: int) -> list[str]:
    """The two settings that make biomedgpt use the server (printed on start)."""
    return [f"BIOMEDGPT_LLM=openai:{folder}", f"OPENAI_BASE_URL=http://127.0.0.1:{port}/v1"]


def register(app: typer.Typer) -> None:
    @app.command("serve-llm")
    def serve_llm(
        port: int = typer.Option(DEFAULT_PORT, "--port", min=1, max=65535, help="Port on 127.0.0.1."),
    ) -> None:
        """Serve the embedded SmolLM2-135M-Instruct as an OpenAI-compatible chat server on 127.0.0.1."""
        from biomedgpt.agent.backends import resolve_device
        from biomedgpt.core.errors import ConfigError
        from biomedgpt.core.settings import get_settings
        from biomedgpt.model.lm import ensure_smollm2

        missing = missing_serve_packages()
        if missing:
            raise ConfigError(f"serve-llm needs {', '.join(missing)}: pip install 'biomedgpt[serve]' "
                              f"(or pip install --no-deps {' '.join(missing)})")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError as error:
                raise ConfigError(f"port {port} on 127.0.0.1 is not free ({error.strerror}); pick another with "
                                  "--port") from None
        folder = str(ensure_smollm2())
        device = resolve_device(get_settings().device)
        lines = settings_lines(folder, port)
        typer.echo(f"biomedgpt: serving the embedded SmolLM2-135M-Instruct on http://127.0.0.1:{port}/v1 "
                   f"({device}); Ctrl-C stops it. In another shell:")
        for line in lines:
            typer.echo(f"  export {line}")
        typer.echo("  (BIOMEDGPT_TOOL_CHOICE=router, the default, suits a model this small)")
        sys.stdout.flush()
        sys.stderr.flush()
        command = serve_command(folder, port, device)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        os.execve(command[0], command, env)  # becomes the server: signals reach it directly
