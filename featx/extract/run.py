"""``featx extract``: manifest + backbone -> batches -> runtime -> store. Resumable: only unfilled rows are computed.

Decoding and preprocessing run in a pool of workers with a bounded look-ahead of batches
(:mod:`featx.extract.pipeline`), so memory stays flat; every batch carries its row indices and
the store writes by index.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from featx import __version__
from featx.backbones.resolve import ResolvedBackbone, check_backbone_name, resolve_backbone
from featx.backbones.spec import BackboneSpec
from featx.backbones.variants import is_variant
from featx.dataset.copies import find_copies
from featx.dataset.manifest import Manifest
from featx.engines.calibration import calibration_batch, gate
from featx.engines.choose import Engine, build_engine
from featx.engines.runtime import choose_runtime
from featx.errors import ConfigError
from featx.extract.config import ExtractConfig
from featx.extract.pipeline import SampleLoader, run_pipeline
from featx.extract.ray import ShardTarget, run_on_ray
from featx.extract.tta import HFLIP_PROVENANCE, with_tta
from featx.failures import max_failures
from featx.images.crop3d import VolumeRecipe
from featx.images.lesion import LesionLoader, not_a_lesion
from featx.images.loader import SampleReader
from featx.images.loader import describe as describe_window
from featx.images.planes import PlaneReader
from featx.images.planes import describe as describe_planes
from featx.images.preprocess import Preprocessor
from featx.progress import spinner
from featx.store.freshness import Stale
from featx.store.open import Shard, open_store, store_writer
from featx.store.plan import rows_left

log = logging.getLogger(__name__)


@dataclass
class ExtractSummary:
    """What an extraction did."""

    feature_set: str
    store: Path
    spec_name: str
    provider: str
    onnx_path: Path | None  # None for the torch runtime
    n_samples: int
    n_already: int
    n_extracted: int
    n_removed: int = 0  # rows of the feature set no longer in the manifest (kept, flagged)
    stale: list[Stale] = field(default_factory=list)  # computed rows redone: their files changed since
    failures: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (sample id, note): animated, tiny, constant images
    fidelity: dict | None = None  # the reduced precision's gate against fp32 (featx.engines.fidelity)
    wall_s: float = 0.0  # whole call: model load, export check, extraction
    loop_s: float = 0.0  # decoding + inference + writing + commit
    compute_s: float = 0.0  # time in the model
    wait_s: float = 0.0  # time the model waited for decoded images
    copies: str = ""  # the exact copies among the set's rows (featx.dataset.copies), "" when none
    auto: dict | None = None  # what --precision auto measured and chose
    unit: str = "img"  # what a row is: an image, or a lesion (3D backbones)

    @property
    def images_per_s(self) -> float:
        """Extraction throughput (excludes model loading and export)."""
        return self.n_extracted / self.loop_s if self.loop_s > 0 else 0.0


@dataclass(frozen=True)
class FeatureSetPlan:
    """The feature set a run writes: its name, what defines its numbers, and its provenance."""

    name: str
    spec: BackboneSpec
    identity: str
    provenance: dict


def run_extract(
    cfg: ExtractConfig, manifest: Manifest | None = None, *, progress: bool = True, made_like: dict | None = None
) -> ExtractSummary:
    """Compute backbone features for every sample of ``manifest`` (default: ``cfg.manifest``) into ``cfg.store``.

    Parameters
    ----------
    cfg : ExtractConfig
        Every setting (see :class:`~featx.extract.config.ExtractConfig`).
    manifest : Manifest, optional
        The samples; their ids key the store rows.
    progress : bool
        Show progress bars.
    made_like : dict, optional
        The provenance of a feature set whose numbers to reproduce on new images (``featx predict``):
        its engine, and its int8 model, are used again.

    Returns
    -------
    ExtractSummary
    """
    t0 = time.perf_counter()
    cfg.require("backbone", "store", *(() if manifest is not None else ("manifest",)))
    check_backbone_name(cfg.backbone)  # a usage error, before the manifest is read
    kind = choose_runtime(cfg.runtime, cfg.provider, cfg.precision)  # refuse what cannot run before model work
    manifest = manifest if manifest is not None else Manifest.load(cfg.manifest)
    if len(manifest) and not any(s.label for s in manifest):
        log.warning(
            "no row of the manifest has a label: the features are extracted, but 'featx fit' needs a 'label' "
            "column, or an outcome column for --target regression or survival (for 'featx predict' on new images, "
            "no label is needed)"
        )
    limit = max_failures(cfg.max_failures, len(manifest))
    backbone = resolve_backbone(
        cfg.backbone, cfg.weights, cfg.layer, cfg.models_dir, pool=cfg.pool, input_size=cfg.input_size
    )
    name, spec = feature_set_name(cfg, backbone)
    if spec.volume is not None:
        if cfg.planes != "none":
            raise ConfigError(f"{spec.name} is a 3D backbone: --planes builds 2.5D inputs for 2D backbones.", "planes")
        check_lesion_rows(manifest, f"{spec.name}, a 3D backbone,")
    elif cfg.planes == "orthogonal":
        check_lesion_rows(manifest, "--planes orthogonal")
    loader = _loader(cfg, spec)

    def images(n, offset=0.0, ids=None):
        return calibration_batch(manifest, loader, n, offset, ids)

    left = (
        rows_left(cfg.store, name, manifest, with_mask=spec.volume is not None)
        if kind == "auto" and not cfg.overwrite
        else None
    )
    runner = build_engine(backbone, kind, cfg, progress, images, _previous(cfg.store, name) or made_like, left)
    plan = plan_feature_set(cfg, backbone, runner)
    fidelity = runner.fidelity
    if runner.precision != "fp32" and fidelity is None:  # a reduced precision computes nothing before the gate
        with spinner(f"checking {runner.precision} against fp32 on calibration images", enabled=progress):
            fidelity = gate(cfg, manifest, loader, backbone, runner)
    if fidelity is not None:
        plan.provenance["fidelity"] = fidelity
    summary = _extract_rows(manifest, cfg, plan, runner, limit, progress)
    summary.copies = copies_line(cfg.store, plan.name)
    summary.auto = runner.details.get("auto")
    summary.unit = "lesion" if spec.volume is not None else "img"
    summary.fidelity = fidelity
    summary.wall_s = time.perf_counter() - t0
    return summary


def check_lesion_rows(manifest: Manifest, what: str) -> None:
    """``what`` (a 3D backbone, orthogonal planes) needs a lesion in every row (a mask or a seed, no slice): refuse
    before any model work."""
    bad = [why for s in manifest if (why := not_a_lesion(s, what.strip(",")))]
    if bad:
        raise ConfigError(f"{what} needs a lesion in every row, and {len(bad)} row(s) are none: {bad[0]}.", "manifest")


def copies_line(store, name: str) -> str:
    """One line on the exact copies among the computed rows of ``name`` (by file and decoded pixels), or ""."""
    with open_store(store) as st:
        ids, keys, subjects, labels = st.content_keys(name)
    copies = find_copies(ids, keys, subjects, labels)
    return copies.summary() + " by fit and bench" if copies else ""


def _previous(store, name: str) -> dict | None:
    """The provenance of feature set ``name`` when ``store`` holds it already (the engine it was made with)."""
    if store is None or not Path(store).is_file():
        return None
    try:
        with open_store(store) as st:
            return st.provenance(name) if name in st.feature_names() else None
    except Exception:  # noqa: BLE001 - a damaged store is named by the writer, with what to do
        return None


def feature_set_name(cfg: ExtractConfig, backbone: ResolvedBackbone) -> tuple[str, BackboneSpec]:
    """The feature set's name and its effective spec (preprocessing overrides applied)."""
    return _name_and_spec(cfg, backbone)[:2]


def _name_and_spec(cfg: ExtractConfig, backbone: ResolvedBackbone):
    spec = backbone.spec
    interpolation, interpolation_from = cfg.effective("interpolation", spec.interpolation)
    if cfg.interpolation is not None or cfg.resize_to_input:  # preprocessing only: the network is unchanged
        spec = replace(
            spec, interpolation=interpolation, resize_size=spec.crop_size if cfg.resize_to_input else spec.resize_size
        )
    refit = cfg.fit is not None and cfg.fit != spec.fit  # another fit than the source's own
    if refit:  # pad and stretch fill the input with the whole image
        spec = replace(spec, fit=cfg.fit, resize_size=spec.crop_size if cfg.fit != "crop" else spec.resize_size)
    layer_suffix = f"@{spec.cut_layer}" if "@" in spec.name else ""  # non-default layers are named in the spec
    # the architecture's own default weights: named by the arch alone (other weights carry their tag)
    plain = cfg.weights == "imagenet" and backbone.source == "registry" and not is_variant(cfg.backbone)
    name = cfg.name or (spec.arch + layer_suffix if plain else spec.name)
    if refit and not cfg.name:
        name += f"~{cfg.fit}"  # the same network on other pixels: another feature set
    if cfg.jpeg_draft and not cfg.name:
        name += "~draft"
    if cfg.planes != "none" and not cfg.name:
        name += f"~{cfg.planes}"  # 2.5D: three planes of a volume, another feature set
    return name, spec, interpolation, interpolation_from


def plan_feature_set(cfg: ExtractConfig, backbone: ResolvedBackbone, runner: Engine) -> FeatureSetPlan:
    """The feature set's name, effective spec (preprocessing overrides applied), identity and provenance."""
    name, spec, interpolation, interpolation_from = _name_and_spec(cfg, backbone)
    exported = runner.exported
    provenance = {
        "kind": "cnn",
        "spec": spec.to_dict(),
        "onnx_file": exported.onnx_path.name if exported else None,
        "onnx_sha256": exported.onnx_sha256 if exported else None,
        "opset": exported.sidecar["opset"] if exported else None,
        "exporter": exported.sidecar["exporter"] if exported else None,
        "runtime": runner.runtime_version,
        "provider": runner.provider,
        "precision": runner.precision,
        "engine": {"runtime": runner.kind, "precision": runner.precision},
        **({"precision_requested": cfg.precision} if cfg.precision != runner.precision else {}),
        **runner.details,
        "preprocessing": _describe_preprocessing(spec, cfg.jpeg_draft),
        "intensity": describe_window(cfg.window) if spec.volume is None else "the 3D recipe's (preprocessing)",
        **({"planes": describe_planes(cfg.planes, cfg.plane_mm)} if cfg.planes != "none" else {}),
        # the whole config, and where each setting in force came from ('featx predict' rebuilds it)
        "config": cfg.record(),
        "settings": {"interpolation": {"value": interpolation, "source": interpolation_from}},
        "featx_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if backbone.finetune is not None:  # fit/bench warn when these features are cross-validated on their training rows
        provenance["finetune"] = {
            k: backbone.finetune.get(k) for k in ("run", "trained_on", "base_weights", "freeze", "classes")
        }
    # fp16/bf16 change the numbers slightly: such features never mix with fp32 rows under one name
    identity = hashlib.sha256(
        (
            spec.to_json()
            + "|window="
            + cfg.window
            + ("|jpeg_draft" if cfg.jpeg_draft else "")
            + (f"|planes={cfg.planes}:{cfg.plane_mm:g}" if cfg.planes != "none" else "")
            + ("" if runner.precision == "fp32" else f"|precision={runner.precision}{runner.identity_extra}")
        ).encode()
    ).hexdigest()
    if cfg.tta != "none":
        provenance["tta"] = HFLIP_PROVENANCE
        identity = hashlib.sha256(f"{identity}|tta={cfg.tta}".encode()).hexdigest()
    return FeatureSetPlan(name, spec, identity, provenance)


def _describe_preprocessing(spec: BackboneSpec, jpeg_draft: bool = False) -> str:
    if spec.volume is not None:
        return VolumeRecipe.from_dict(spec.volume).describe()
    how = {
        "crop": f"resize short side {spec.resize_size} ({spec.interpolation}, antialiased), centre crop {spec.crop_size}",
        "pad": f"longer side resized to {spec.crop_size} ({spec.interpolation}, antialiased), aspect kept, "
        f"letterboxed with black to {spec.crop_size} x {spec.crop_size}",
        "stretch": f"resized to {spec.resize_size} x {spec.resize_size} ({spec.interpolation}, antialiased, aspect "
        f"not kept), centre crop {spec.crop_size}",
    }[spec.fit]
    side = draft_side(spec)
    draft = (
        f"JPEG files decoded at the smallest DCT scale keeping both sides >= {side} (Pillow draft; not for rows "
        "with a crop box), then "
        if jpeg_draft
        else ""
    )
    return f"{draft}{how}, /255, normalise mean {list(spec.mean)} std {list(spec.std)}; {spec.channel_policy}"


def draft_side(spec: BackboneSpec) -> int:
    """The side a drafted JPEG keeps at least: what the resize (or the letterbox) reads."""
    return max(spec.resize_size, spec.crop_size)


def _loader(cfg: ExtractConfig, spec: BackboneSpec, pixels: bool = False):
    """Decoding and preprocessing to the float input, or (``pixels``) to the 8-bit pixels an engine normalises; a
    3D backbone's lesion crops (:class:`~featx.images.lesion.LesionLoader`)."""
    if spec.volume is not None:
        return LesionLoader(spec.volume)
    if cfg.planes != "none":
        reader = PlaneReader(cfg.planes, cfg.window, cfg.plane_mm)
        pre = Preprocessor.from_spec(spec)
        return SampleLoader(reader, pre.pixels if pixels else pre)
    reader = SampleReader(cfg.window, keep_grey=True, draft=draft_side(spec) if cfg.jpeg_draft else None)
    pre = Preprocessor.from_spec(spec)
    return SampleLoader(reader, pre.pixels if pixels else pre)


def _extract_rows(
    manifest: Manifest, cfg: ExtractConfig, plan: FeatureSetPlan, runner: Engine, limit: int, progress: bool
) -> ExtractSummary:
    """Register the samples and the feature set, then compute the rows still to do through the journal."""
    spec = plan.spec
    pixels = runner.run_pixels is not None and cfg.ray is None  # the engine scales and normalises in its graph
    loader = _loader(cfg, spec, pixels)
    with store_writer(cfg.store, Shard.parse(cfg.shard)) as w:
        todo, removed, stale = w.register(
            manifest,
            plan.name,
            spec.feature_dim,
            plan.provenance,
            plan.identity,
            "cnn",
            cfg.overwrite,
            with_mask=spec.volume is not None,  # the mask places a lesion's crop
        )
        summary = ExtractSummary(
            plan.name,
            Path(cfg.store),
            spec.name,
            runner.provider,
            runner.exported.onnx_path if runner.exported else None,
            n_samples=len(w.block(len(manifest))),
            n_already=len(w.block(len(manifest))) - len(todo),
            n_extracted=0,
            n_removed=removed,
            stale=stale,
        )
        if not todo:
            return summary
        journal = w.start_journal(plan.name, plan.identity, spec.feature_dim)
        t_loop = time.perf_counter()
        label, where = f"extract {plan.name}", str(cfg.store)
        try:
            if cfg.ray is not None:
                stats = run_on_ray(
                    cfg.ray,
                    todo,
                    loader,
                    runner.run,
                    journal.append,
                    target=ShardTarget(str(w.incoming), plan.name, plan.identity, spec.volume is not None),
                    adopt=journal.adopt,
                    dim=spec.feature_dim,
                    batch_size=cfg.batch_size,
                    limit=limit,
                    label=f"{label} (ray)",
                    progress=progress,
                    tta=cfg.tta,
                    where=where,
                )
            else:
                stats = run_pipeline(
                    todo,
                    loader,
                    with_tta(runner.run_pixels, cfg.tta, "NHWC") if pixels else with_tta(runner.run, cfg.tta),
                    journal.append,
                    batch_size=cfg.batch_size,
                    limit=limit,
                    label=label,
                    workers=cfg.workers,
                    mode=cfg.decode,
                    lookahead=cfg.lookahead,
                    progress=progress,
                    where=where,
                )
            summary.failures, summary.notes = stats.failures, stats.notes
            summary.compute_s, summary.wait_s = stats.compute_s, stats.wait_s
        finally:
            summary.n_extracted = journal.rows_ok  # what reached the journal, also when the run stops early
        # leaving the writer commits the journal to the store (also after an error: nothing computed is lost)
    summary.loop_s = time.perf_counter() - t_loop
    return summary
