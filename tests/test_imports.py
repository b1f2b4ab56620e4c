"""featx fit starts fast: the evaluation modules never import torch, onnxruntime or radiomics."""
import subprocess
import sys


def test_evaluation_modules_do_not_import_heavy_runtimes():
    code = (
        "import sys\n"
        "import featx.evaluate.heads, featx.evaluate.cv, featx.evaluate.metrics, featx.report.html, featx.evaluate.fit, featx.store.store, featx.dataset.manifest\n"
        "import featx.evaluate.fusion, featx.evaluate.scoring, featx.evaluate.bench, featx.evaluate.saved_model, featx.report.bench, featx.evaluate.outputs\n"
        "import featx.report.compare, featx.cli.evaluate\n"
        "heavy = [m for m in ('torch', 'torchvision', 'onnxruntime', 'onnx', 'radiomics') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported: {out.stdout.strip()}"
