"""Readers of typed results: the HTML pages and plots of fit, bench and finetune runs, and ``featx compare``.

Formatting only: nothing here fits a model, and everything is drawn from :mod:`featx.results` objects,
so a page re-renders from its results.json alone."""
