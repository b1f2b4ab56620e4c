"""The runs: ``fit``, ``bench``, label-efficiency curves, fine-tuned rows, and the files they write."""
