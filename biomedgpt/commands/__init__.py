"""Command modules of the ``biomedgpt`` CLI; each defines ``register(app: typer.Typer)``.

Modules here must import heavy libraries (torch, chromadb, langgraph) inside the command
functions, so that ``biomedgpt --help`` and ``--version`` stay fast.
"""
