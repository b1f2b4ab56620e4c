"""featx fit starts fast: the evaluation modules never import torch, onnxruntime or radiomics."""
import subprocess
import sys


def test_evaluation_modules_do_not_import_heavy_runtimes():
    code = (
        "import sys\n"
        "import featx.heads, featx.cv, featx.metrics, featx.report, featx.fit, featx.store, featx.manifest\n"
        "import featx.fusion, featx.scoring, featx.bench, featx.models, featx.report_bench, featx.results_io\n"
        "import featx.compare, featx.cli_eval\n"
        "heavy = [m for m in ('torch', 'torchvision', 'onnxruntime', 'onnx', 'radiomics') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported: {out.stdout.strip()}"
