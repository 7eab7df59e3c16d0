"""The front door: settings precedence, the CLI's error policy, ``--version`` and ``doctor``."""

from __future__ import annotations

import json
import subprocess
import sys

from pytest_httpserver import HTTPServer
from typer.testing import CliRunner

from biomedgpt import __version__
from biomedgpt.cli import app
from biomedgpt.core.settings import Settings, get_settings, reset_settings

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"biomedgpt {__version__}"


def test_settings_precedence_env_over_toml(tmp_path, monkeypatch):
    config = tmp_path / "config.toml"
    config.write_text('llm = "ollama:llama3"\npubchem_url = "http://toml.invalid/"\n[http]\nread_timeout = 7.5\n')
    monkeypatch.setenv("BIOMEDGPT_CONFIG", str(config))
    monkeypatch.setenv("BIOMEDGPT_PUBCHEM_URL", "http://127.0.0.1:9/")
    reset_settings()
    settings = get_settings()
    assert settings.llm == "ollama:llama3"  # from the TOML file
    assert settings.pubchem_url == "http://127.0.0.1:9"  # env wins, trailing slash removed
    assert settings.http.read_timeout == 7.5
    assert settings.http.connect_timeout == 5.0  # default kept inside the nested table
    monkeypatch.setenv("BIOMEDGPT_HTTP__READ_TIMEOUT", "2")
    assert Settings().http.read_timeout == 2.0


def test_settings_paths_stay_under_home(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOMEDGPT_HOME", str(tmp_path / "h"))
    reset_settings()
    target = get_settings().path("models", "x.bin")
    assert target.parent.is_dir()
    assert tmp_path / "h" in target.parents


def test_errors_are_one_line_and_debug_shows_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("this is = = not toml")
    env = {"BIOMEDGPT_CONFIG": str(bad), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    cmd = [sys.executable, "-m", "biomedgpt.cli", "doctor", "--json"]
    plain = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert plain.returncode == 1
    lines = [line for line in plain.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, plain.stderr
    assert "Traceback" not in plain.stderr and str(bad) in lines[0] and "unexpected" not in lines[0]
    debug = subprocess.run([sys.executable, "-m", "biomedgpt.cli", "--debug", "doctor", "--json"],
                           capture_output=True, text=True, env=env, timeout=120)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_doctor_reports_services_against_loopback(httpserver: HTTPServer, monkeypatch):
    httpserver.expect_request("/rest/pug/compound/cid/2244/property/MolecularFormula/TXT").respond_with_data("C9H8O4\n")
    httpserver.expect_request("/uniprotkb/P05067.fasta").respond_with_data(">sp|P05067|A4_HUMAN\nMLPGLALLLL\n")
    base = httpserver.url_for("").rstrip("/")
    monkeypatch.setenv("BIOMEDGPT_PUBCHEM_URL", base)
    monkeypatch.setenv("BIOMEDGPT_UNIPROT_URL", "http://127.0.0.1:9")  # nothing listens on port 9
    reset_settings()
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["services"]["pubchem"] == "online (HTTP 200)"
    assert report["services"]["uniprot"].startswith("offline")
    assert report["home"] == str(get_settings().home)
    assert report["versions"]["torch"] == "2.13.0+cpu" or report["versions"]["torch"].startswith("2.13.0")
    assert report["llm_backend"] == "none"
    names = {row["name"] for row in report["weights"]}
    assert names, "doctor must list the weights it looked for"
    assert len(httpserver.log) == 1


def test_doctor_in_offline_mode_does_not_probe(httpserver: HTTPServer, monkeypatch):
    monkeypatch.setenv("BIOMEDGPT_OFFLINE", "1")
    monkeypatch.setenv("BIOMEDGPT_PUBCHEM_URL", httpserver.url_for(""))
    reset_settings()
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0
    assert "offline mode" in json.loads(result.output)["services"]["pubchem"]
    assert httpserver.log == []
