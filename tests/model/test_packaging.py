"""Nothing generic lands in site-packages: from outside the repo, ``import tools`` and ``import model`` fail."""

from __future__ import annotations

import subprocess
import sys


def test_generic_names_are_not_importable_outside_the_repo(tmp_path):
    code = (
        "import importlib, sys\n"
        "for name in ('tools', 'model', 'agent', 'training'):\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ModuleNotFoundError:\n"
        "        continue\n"
        "    sys.exit(f'{name} is importable')\n"
        "import biomedgpt.model, biomedgpt.tools\n"
        "print('ok', biomedgpt.model.__name__)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok biomedgpt.model" in result.stdout
