"""The ``featx`` command line: the Typer app (:mod:`featx.cli.app`) and one module per command group.

Each command resolves its options (command line, then ``featx.toml``, then defaults) into a
config object, makes one library call and renders the result. Only this package turns
:class:`featx.errors.FeatxError` into exit codes.
"""
