"""A fine-tuned backbone as a new backbone entry, ``<arch>.ft-<run>``, usable by ``featx extract``.

``featx finetune --export RUN`` writes into the models folder (``models_onnx/``):

- ``<arch>.ft-RUN.pt``: the backbone's weights (the architecture's own state-dict keys,
  without the new head), loadable like any ``--weights`` file;
- ``<arch>.ft-RUN.finetune.json``: the entry: its spec (preprocessing and input size of
  the fine-tuning, the weights' sha256) and provenance (run folder, what it was trained on);
- ``<arch>.ft-RUN.onnx`` and its sidecar, exported and checked against torch right away.

``featx extract --backbone resnet18.ft-RUN`` finds the entry in ``--models-dir``.
"""

from __future__ import annotations

import json
from pathlib import Path

from featx.backbones.export import export_onnx
from featx.backbones.finetuned import FORMAT, entry_paths, load_finetuned
from featx.backbones.spec import BackboneSpec
from featx.backbones.weights import sha256_file
from featx.finetune.blocks import block_map
from featx.finetune.config import check_tag


def export_finetuned(net, spec: BackboneSpec, tag: str, models_dir: str | Path, meta: dict) -> dict:
    """Write the entry for ``net``'s backbone; returns its name, files and the ONNX parity figures."""
    import torch

    check_tag(tag)
    name = f"{spec.arch}.ft-{tag}"
    weights_path, record_path = entry_paths(name, models_dir)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    prefix = block_map(spec.arch, net.features).state_prefix
    state = {
        k[len(prefix) :] if k.startswith(prefix) else k: v.detach().cpu().clone()
        for k, v in net.features.state_dict().items()
    }
    tmp = weights_path.with_name(weights_path.name + ".part")
    torch.save(state, tmp)
    tmp.replace(weights_path)
    sha = sha256_file(weights_path)
    ft_spec = spec.evolve(name=name, weights_id=f"finetune:{tag}", weights_sha256=sha)
    record = {
        "format": FORMAT,
        "name": name,
        "arch": spec.arch,
        "weights_file": weights_path.name,
        "weights_sha256": sha,
        "spec": ft_spec.to_dict(),
        "base_weights": meta.get("weights"),
        "trained_on": meta.get("trained_on"),
        "run": meta.get("run"),
        "classes": meta.get("classes"),
        "freeze": meta.get("freeze"),
    }
    record_path.write_text(json.dumps(record, indent=2))
    spec2, features, _ = load_finetuned(name, models_dir)
    exported = export_onnx(spec2, features, models_dir)
    return {
        "name": name,
        "weights": str(weights_path),
        "record": str(record_path),
        "onnx": str(exported.onnx_path),
        "onnx_sha256": exported.onnx_sha256,
        "parity": exported.sidecar["parity"],
    }
