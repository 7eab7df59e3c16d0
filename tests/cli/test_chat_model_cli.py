"""``biomedgpt doctor`` on the chat model (does its template render tools?) and ``biomedgpt serve-llm``'s one-line
refusals. The server itself is exercised by tests/agent/test_real_server.py."""

from __future__ import annotations

import json
import socket

from typer.testing import CliRunner

from biomedgpt.cli import app
from biomedgpt.core.settings import reset_settings
from biomedgpt.commands.serve import serve_command, settings_lines

runner = CliRunner()


def _doctor(monkeypatch, llm: str) -> dict:
    monkeypatch.setenv("BIOMEDGPT_OFFLINE", "1")  # no service probes
    monkeypatch.setenv("BIOMEDGPT_LLM", llm)
    reset_settings()
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["chat_model"]


def test_doctor_says_whether_the_template_renders_tools(tmp_path, monkeypatch):
    from biomedgpt.model.lm import set_tool_template, tiny_tokenizer

    plain = tmp_path / "plain"
    tokenizer = tiny_tokenizer()
    tokenizer.chat_template = "{% for m in messages %}{{ m.content }}{% endfor %}"  # ignores tools
    tokenizer.save_pretrained(plain)
    report = _doctor(monkeypatch, f"hf:{plain}")
    assert report["template_renders_tools"] is False and "does NOT render tools" in report["template"]
    aware = tmp_path / "aware"
    set_tool_template(tiny_tokenizer()).save_pretrained(aware)
    report = _doctor(monkeypatch, f"openai:{aware}")  # a folder served by transformers serve
    assert report["template_renders_tools"] is True and "transformers serve parses" in report["template"]
    assert report["tool_choice"] == "router" and report["max_tokens"] == 512
    assert _doctor(monkeypatch, "openai:gpt-4o")["template"] == "on the server (not checked from here)"
    assert _doctor(monkeypatch, "none")["template"].startswith("no chat model")


def test_serve_llm_refuses_in_one_line(monkeypatch):
    import biomedgpt.commands.serve as serve

    monkeypatch.setattr(serve, "missing_serve_packages", lambda: ["sse-starlette"])
    out = runner.invoke(app, ["serve-llm"])
    assert out.exit_code == 1 and out.output.count("\n") == 1
    assert "pip install 'biomedgpt[serve]'" in out.output
    monkeypatch.setattr(serve, "missing_serve_packages", lambda: [])
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = runner.invoke(app, ["serve-llm", "--port", str(port)])
    assert out.exit_code == 1 and f"port {port} on 127.0.0.1 is not free" in out.output


def test_serve_llm_command_and_settings():
    command = serve_command("/models/smol", 8123, "cpu")
    assert command[1:] == ["-m", "transformers.cli.transformers", "serve", "/models/smol", "--host", "127.0.0.1",
                           "--port", "8123", "--device", "cpu", "--dtype", "float32"]
    assert settings_lines("/models/smol", 8123) == ["BIOMEDGPT_LLM=openai:/models/smol",
                                                    "OPENAI_BASE_URL=http://127.0.0.1:8123/v1"]
