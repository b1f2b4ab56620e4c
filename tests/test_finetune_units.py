"""Fine-tuning parts: block maps, freezing, augmentation, summaries, Grad-CAM, linear head weights."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from featx.backbones.registry import get_entry  # noqa: E402
from featx.backbones.weights import load_backbone  # noqa: E402
from featx.errors import FeatxError  # noqa: E402
from featx.finetune.blocks import BLOCK_MAPS, apply_freeze, block_map, parse_freeze, unmapped_parameters  # noqa: E402
from featx.finetune.config import TrainConfig  # noqa: E402
from featx.finetune.data import Augment  # noqa: E402
from featx.finetune.gradcam import gradcam, linear_weights  # noqa: E402
from featx.finetune.model import HeadConfig, build_net  # noqa: E402
from featx.finetune.train import summarize, train_fold  # noqa: E402


@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted([*BLOCK_MAPS, "vgg11_bn", "vgg16"]))
def test_block_map_covers_the_backbone(arch):
    _, features = load_backbone(arch, "random")
    bmap = block_map(arch, features)
    names = [n for n, _ in features.named_parameters()]
    for block, prefixes in bmap.blocks:  # every block holds parameters; blocks do not overlap
        assert any(n.startswith(prefixes) for n in names), block
    owners = [[b for b, ps in bmap.blocks if n.startswith(ps)] for n in names]
    assert all(len(o) <= 1 for o in owners)
    # only the unused original classifier may lie outside the blocks
    head = tuple(bmap.state_prefix + p for p in get_entry(arch).head_prefix)
    assert all(n.startswith(head) for n in unmapped_parameters(features, bmap))
    assert features.get_submodule(bmap.gradcam_layer) is not None
    order = [next(i for i, n in enumerate(names) if n.startswith(ps)) for _, ps in bmap.blocks]
    assert order == sorted(order), "blocks are listed lowest first"


def test_parse_freeze():
    bmap = BLOCK_MAPS["resnet18"]
    assert parse_freeze("all", bmap) == 5 and parse_freeze("3", bmap) == 3 and parse_freeze(0, bmap) == 0
    for bad in ("6", "-1", "x"):
        with pytest.raises(FeatxError, match="stem, layer1"):
            parse_freeze(bad, bmap)
    with pytest.raises(FeatxError, match="no block map"):
        block_map("onnx")


class FakeBank:
    """Seeded random images with a planted class signal, as a bank of positions."""

    def __init__(self, n=24, size=64):
        g = np.random.default_rng(0)
        self.y = np.arange(n) % 2
        self.x = (g.standard_normal((n, 3, size, size)) + self.y[:, None, None, None]).astype(np.float32)

    def batch(self, idx):
        return self.x[np.asarray(idx)]


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("freeze", [2, 5])
def test_frozen_blocks_do_not_change_and_the_others_do(freeze):
    spec, bmap, net = build_net("resnet18", "random", 2, HeadConfig(), input_size=64)
    bank = FakeBank()
    before = _state(net)
    cfg = TrainConfig(epochs=2, batch_size=8, val_fraction=0, rotate=10)
    run = train_fold(net, bmap, freeze, bank, bank.y, None, np.arange(16), np.arange(16, 24), cfg, seed=0)
    after = _state(run.net)
    frozen = tuple(p for _, ps in bmap.blocks[:freeze] for p in ps)
    for k in before:  # parameters and batch-norm statistics alike
        if not k.startswith("features.") or "num_batches_tracked" in k:
            continue
        same = torch.equal(before[k], after[k])
        assert same == k[len("features.") :].startswith(frozen), k
    assert not torch.equal(before["head.1.weight"], after["head.1.weight"])
    assert run.proba.shape == (8, 2) and np.allclose(run.proba.sum(1), 1)
    assert [h["epoch"] for h in run.history] == [1, 2] and {"train_loss", "test_acc", "seconds"} <= set(run.history[0])


def test_freeze_all_trains_only_the_head():
    _, bmap, net = build_net("resnet18", "random", 2, HeadConfig("mlp", hidden=16, dropout=0.5), input_size=64)
    apply_freeze(net.features, bmap, parse_freeze("all", bmap))
    assert not any(p.requires_grad for p in net.features.parameters())
    assert all(p.requires_grad for p in net.head.parameters())
    assert [type(m).__name__ for m in net.head] == ["Dropout", "Linear", "ReLU", "Dropout", "Linear"]
    assert net.head[1].out_features == 16 and net.head[-1].out_features == 2


def test_export_name_is_checked_before_training():
    from featx.finetune.export import check_tag

    check_tag("liver-T2_lock3")
    with pytest.raises(FeatxError, match="letters, digits"):
        check_tag("a b")


def test_input_size_too_small_is_one_clear_error():
    with pytest.raises(FeatxError, match="choose a larger --input-size"):
        build_net("inception_v3", "random", 2, HeadConfig(), input_size=40)


def test_augment():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(Augment(hflip=False, rotate=0)(x, g), x)
    flipped = Augment(hflip=True, rotate=0)(x, g)
    for i in range(2):
        assert torch.equal(flipped[i], x[i]) or torch.equal(flipped[i], x[i].flip(-1))
    moved = Augment(hflip=False, rotate=12, shift=0.1, shear=5, jitter=0.2)(x, g)
    assert moved.shape == x.shape and not torch.equal(moved, x)
    # a pure rotation keeps the centre pixel's neighbourhood and zero-fills outside the image
    one = torch.ones(1, 3, 33, 33)
    r = Augment(hflip=False, rotate=45)(one, torch.Generator().manual_seed(1))
    assert r[0, 0, 16, 16] == pytest.approx(1, abs=1e-5) and r.min() < 0.5


def test_summarize_the_seed_style_summary():
    hist = [{"epoch": i + 1, "test_acc": a, "seconds": 2.0} for i, a in enumerate([0.5, 0.7, 0.8, 0.9, 0.7, 0.8])]
    s = summarize(hist, "test_acc", 0.5)
    assert s["best_acc"] == 0.9 and s["best_epoch"] == 4 and s["converged_from_epoch"] == 4
    assert s["mean_acc_after_convergence"] == pytest.approx(0.8)
    assert s["var_acc_after_convergence"] == pytest.approx(np.var([0.9, 0.7, 0.8], ddof=1))
    assert s["first_epoch_reaching_mean"] == 3 and s["seconds_per_epoch"] == 2.0


def test_gradcam_points_at_the_evidence():
    conv = torch.nn.Conv2d(3, 2, 1)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.zero_()

    def score(x):  # class 1: channel 0's mean activation; class 0: minus it
        m = conv(x)[:, 0].mean((1, 2))
        return torch.stack([-m, m], 1)

    x = torch.zeros(2, 3, 16, 16)
    x[0, :, :8, :8] = 1  # evidence in the top-left quadrant of image 0, bottom-right of image 1
    x[1, :, 8:, 8:] = 1
    maps, scores = gradcam(score, conv, x, [1, 1])
    assert maps.shape == (2, 16, 16) and scores.shape == (2, 2) and maps.max() <= 1
    assert maps[0, 1:7, 1:7].min() > 0.9 and maps[0, 9:, 9:].max() < 0.1
    assert maps[1, 9:, 9:].min() > 0.9 and maps[1, 1:7, 1:7].max() < 0.1
    against, _ = gradcam(score, conv, x, [0, 0])  # evidence against a class: nothing to show (ReLU)
    assert np.allclose(against, 0)


@pytest.mark.parametrize("head", ["logreg", "lda"])
@pytest.mark.parametrize("pca", [None, 3])
def test_linear_weights_reproduce_the_head(head, pca):
    from featx.evaluate.heads.registry import build_head

    g = np.random.default_rng(0)
    X = g.standard_normal((60, 6)) * [1, 2, 3, 4, 5, 6] + 10
    y = (X[:, 0] + X[:, 3] / 4 > 10).astype(int)
    model = build_head(head, 0, pca)[0].fit(X, y)
    w = linear_weights(model, 2)
    dec = model.pipeline_.decision_function(X)
    lin = X @ (w[1] - w[0])
    assert np.allclose(dec - dec[0], lin - lin[0])


def test_linear_weights_refuse_a_nonlinear_head():
    from featx.evaluate.heads.registry import build_head

    X, y = np.random.default_rng(0).standard_normal((30, 4)), np.arange(30) % 2
    with pytest.raises(FeatxError, match="needs a linear head"):
        linear_weights(build_head("rf", 0)[0].fit(X, y), 2)


def test_fold_journal_resumes_only_identical_settings(tmp_path):
    from featx.finetune.journal import FoldJournal

    settings = {"freeze": 2, "seed": 0, "folds": {"a": 0}}
    j = FoldJournal(tmp_path, settings)
    assert j.n_done == 0 and j.get(0, 1) is None
    j.put(0, 1, np.array([[0.2, 0.8]]), {"repeat": 0, "fold": 1, "seconds": 3.0})
    again = FoldJournal(tmp_path, settings)
    assert again.n_done == 1 and again.get(0, 1)["proba"] == [[0.2, 0.8]] and again.seconds_before == 3.0
    assert FoldJournal(tmp_path, {**settings, "seed": 1}).n_done == 0  # other settings: nothing reused
    (again.dir / "r0_f2.json").write_text("{cut sho")  # a file cut short by the interruption is ignored
    assert FoldJournal(tmp_path, settings).n_done == 1
    again.clear()
    assert not (tmp_path / ".partial").exists()
