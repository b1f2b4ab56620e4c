"""Running the featx command line in tests: in-process (the default), or as the real console script."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

FEATX = shutil.which("featx") or str(Path(sys.executable).parent / "featx")


def featx(*args, cwd=None) -> SimpleNamespace:
    """``featx ARGS`` in this process (Typer's CliRunner): the same app, options and exit codes as the console
    script, without a new interpreter importing torch again. ``returncode``, ``stdout``, ``stderr``."""
    from typer.testing import CliRunner

    from featx.cli.app import app

    with _cwd(cwd):
        result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    logging.getLogger("featx").handlers[:] = []  # the CLI's handler wrote to the runner's (now closed) stderr
    return SimpleNamespace(returncode=result.exit_code, stdout=result.stdout, stderr=result.stderr)


def featx_process(*args, cwd=None, timeout: int = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """``featx ARGS`` as the installed console script in a subprocess (``env``: variables added to this one's)."""
    return subprocess.run(
        [FEATX, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env=None if env is None else {**os.environ, **env},
    )


@contextlib.contextmanager
def _cwd(path):
    if path is None:
        yield
        return
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def _flat(text: str) -> str:
    """Text with the box-drawing of a usage panel and line breaks collapsed to single spaces."""
    return re.sub(r"\s+", " ", re.sub(r"[│╭╮╰╯─]", " ", text))


def assert_one_line_error(proc, *fragments):
    """An error about the data or the run: exit 1, one ``error:`` line (that may wrap), no traceback."""
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    error_lines = [ln for ln in lines if ln.startswith("error:")]
    assert len(error_lines) == 1, proc.stderr
    joined = " ".join(lines[lines.index(error_lines[0]) :])  # the message may wrap on narrow terminals
    for frag in fragments:
        assert frag in joined, (frag, proc.stderr)


def assert_usage_error(proc, *fragments):
    """A usage error (an option, a value, a setting, featx.toml): exit 2, a message naming it, no traceback."""
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    joined = _flat(proc.stderr)
    for frag in fragments:
        assert frag in joined, (frag, proc.stderr)


def stored(store, name: str) -> SimpleNamespace:
    """Feature set ``name`` of a store, every row, whatever its layout: ``X`` (NaN where not computed), ``filled``,
    ``status``, ``error``, ``ids``, ``provenance``, ``attrs`` (the set's), ``feature_names``, ``names`` (its sets)."""
    import numpy as np

    from featx.store.open import open_store

    with open_store(store) as st:
        attrs = st.set_attrs(name)
        filled = st.filled(name)
        rows = np.flatnonzero(filled)
        computed = st.features(name, rows) if len(rows) else np.zeros((0, int(attrs["feature_dim"])), np.float32)
        X = np.full((len(filled), computed.shape[1]), np.nan, dtype=computed.dtype)
        X[rows] = computed
        return SimpleNamespace(
            X=X,
            filled=filled,
            status=st.status(name),
            error=st.errors(name),
            ids=st.sample_ids(),
            slices=st.sample_slices(),
            provenance=st.provenance(name),
            attrs=attrs,
            feature_names=st.column_names(name),
            names=st.feature_names(),
        )
