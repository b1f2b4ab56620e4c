"""Re-run every recipe on its stand-in (the CI test's settings) and put the real outputs into the recipe pages.

    python docs/recipes/render.py [NAME ...] [--work DIR]

For each recipe: ``featx.demo.standins.run_recipe`` into DIR/<name>, then the ``compare.md``
table (or the bench table) replaces the block between ``<!-- output -->`` and
``<!-- /output -->`` in ``docs/recipes/<name>.md``, and the plots listed in ``FIGURES``
are copied to ``docs/recipes/img/<name>-<file>``.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from featx.demo.standins import RECIPES, run_recipe

HERE = Path(__file__).resolve().parent
FIGURES = {
    "liver_fibrosis": ["finetune-resnet18-lock0/T2/curves.png"],
    "glioma_sequences": ["frozen-logreg/roc.png", "leaky-slice-split-logreg/roc.png"],
    "pleural_effusion": ["frozen-resnet50-logreg/confusion.png", "finetuned-resnet50/gradcam"],
    "finetune_vs_features": ["bench/roc.png"],
    "glioma_grade": ["bench/folds.png"],
}


def render(name: str, work: Path) -> float:
    t0 = time.perf_counter()
    shutil.rmtree(work / name, ignore_errors=True)
    proc = run_recipe(name, work / name, work / "models_onnx")
    if proc.returncode:
        sys.exit(f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    seconds = time.perf_counter() - t0
    study = work / name / "study"
    table = (study / "summary" / "compare.md").read_text()
    (HERE / "img").mkdir(exist_ok=True)
    for rel in FIGURES[name]:
        src = study / rel
        if src.is_dir():  # a few Grad-CAM overlays: the first right and the first wrong one
            for kind in ("right", "wrong"):
                for p in sorted(src.glob(f"{kind}_*.png"))[:1]:
                    shutil.copy(p, HERE / "img" / f"{name}-gradcam-{kind}.png")
        elif src.is_file():
            shutil.copy(src, HERE / "img" / f"{name}-{rel.replace('/', '-')}")
    page = HERE / f"{name}.md"
    text = page.read_text()
    block = (
        f"<!-- output -->\nStand-in run (`python docs/recipes/render.py {name}`, {seconds:.0f} s on 2 CPU cores, "
        f"random weights, settings of `featx.demo.standins.RECIPES`):\n\n{table.strip()}\n<!-- /output -->"
    )
    page.write_text(re.sub(r"<!-- output -->.*?<!-- /output -->", lambda _: block, text, flags=re.S))
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", default=list(RECIPES))
    ap.add_argument("--work", type=Path, default=None, help="Folder for the runs (default: a temporary one).")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="featx-recipes-"))
    for name in args.names:
        print(f"{name}: {render(name, work):.0f} s -> {HERE / (name + '.md')}")


if __name__ == "__main__":
    main()
