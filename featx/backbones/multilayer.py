"""Multi-layer pooled features: concatenated global-average pools of named stages.

``--layer layer2+layer3+layer4`` on a ResNet gives 128 + 256 + 512 = 896 features;
the stage names are the model's module names (``featx backbones`` shows examples).
"""

from __future__ import annotations

from featx.errors import BackboneError


def multi_layer_cut(nodes: list[str]):
    """Cut returning ``cat(GAP(stage) for stage in nodes)`` as an ``(N, sum of channels)`` module."""

    def cut(model):
        import torch
        import torch.nn as nn
        from torchvision.models.feature_extraction import create_feature_extractor

        modules = dict(model.named_modules())
        unknown = [n for n in nodes if n not in modules]
        if unknown:
            stages = ", ".join(name for name, _ in model.named_children())
            raise BackboneError(
                f"Unknown stage(s) {unknown}; this backbone's top-level stages are: {stages} "
                "(nested ones as e.g. features.denseblock3)."
            )
        try:
            body = create_feature_extractor(model.eval(), return_nodes={n: n for n in nodes})
        except Exception as exc:  # torch.fx cannot trace some models' Python control flow
            raise BackboneError(
                f"Cannot cut {'+'.join(nodes)} from this model ({type(exc).__name__}: {exc})."
            ) from None

        class MultiPool(nn.Module):
            """Global-average-pool each requested stage and concatenate, in the order asked."""

            def __init__(self):
                super().__init__()
                self.body = body

            def forward(self, x):
                feats = self.body(x)
                return torch.cat([torch.flatten(nn.functional.adaptive_avg_pool2d(feats[n], 1), 1) for n in nodes], 1)

        return MultiPool()

    return cut
