"""The data path, stage by stage: what decoding and preprocessing cost per image, and what each alternative saves.

Issue 20 item 4: at 300-700 img/s the model no longer dominates on 2 cores, decoding and preprocessing do.
This measures, on one thread (core-ms per image, medians over the images, stages interleaved over
``--repeats`` rounds):

* **decode**: PNG (512 px grey) and JPEG (512, 1024, 2048 px, grey and RGB) with Pillow (featx's
  decoder), OpenCV, simplejpeg and pyspng where installed, and Pillow's JPEG ``draft`` (DCT-domain
  downscaling to the smallest scale >= the backbone's resize size);
* **preprocess**: featx's resize + centre crop (Pillow, the weights' filter), the same with Pillow's
  ``reducing_gap``, and normalisation to float32 CHW in numpy;
* **in-graph**: the OpenVINO model with float32 NCHW input against the same model compiled with a
  ``PrePostProcessor`` that takes uint8 NHWC (normalise and layout in the graph), and one that also
  resizes in the graph; the cosine of their features to featx's path says whether they are the same
  features.

* **pipeline**: featx's own pipeline (``run_pipeline``: 2 decode threads, the model on the calling
  thread) on the 512-px PNGs with the OpenVINO int8 engine, fed float32 NCHW against uint8 pixels,
  interleaved;
* **draft** (``--jpeg-draft``): the cosine of the features of large JPEGs decoded with ``draft`` to those
  of a full decode, and (``--downstream``) the CV AUC of BreastMNIST's 780 images saved as 1024-px JPEGs,
  full decode against draft (10-fold logistic regression, 3 seeds).

    python benchmarks/datapath.py --downstream             # lite0 (real weights), int8 and fp32 graphs
    python benchmarks/datapath.py --backbone resnet50 --weights random

Writes ``benchmarks/results/datapath_cpu.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
from machine import cpu_info  # noqa: E402
from PIL import Image  # noqa: E402

HERE = Path(__file__).resolve().parent


def optional(name: str):
    try:
        return __import__(name)
    except ImportError:
        return None


def sources(n: int, data: Path) -> dict[str, list[bytes]]:
    """Encoded files in memory (the decode is measured, not the disk): PNG 512 grey, JPEG at 3 sizes, grey and RGB."""
    sys.path.insert(0, str(HERE))
    from extract import make_pngs

    manifest = make_pngs(data, n)
    paths = [line.split(",")[1] for line in manifest.read_text().splitlines()[1:]][:n]
    grey = [np.asarray(Image.open(p)) for p in paths]
    out: dict[str, list[bytes]] = {"png512_grey": [Path(p).read_bytes() for p in paths]}
    for size in (512, 1024, 2048):
        for mode in ("grey", "rgb"):
            blobs = []
            for i, g in enumerate(grey):
                im = Image.fromarray(g).resize((size, size), Image.Resampling.BICUBIC)
                if mode == "rgb":  # a tinted colour image (ultrasound/pathology-like), not a grey one in RGB
                    a = np.asarray(im, np.float32)
                    im = Image.fromarray(
                        np.stack([a, a * 0.8 + 20 * (i % 3), a * 0.6], -1).clip(0, 255).astype(np.uint8)
                    )
                buf = io.BytesIO()
                im.save(buf, "JPEG", quality=90)
                blobs.append(buf.getvalue())
            out[f"jpeg{size}_{mode}"] = blobs
    return out


def per_image_ms(fn, items) -> float:
    """Median core-ms of ``fn`` over ``items`` (one call each)."""
    times = []
    for it in items:
        t = time.perf_counter()
        fn(it)
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def pil_decode(b: bytes):
    im = Image.open(io.BytesIO(b))
    im.load()
    return im


def pil_draft(resize: int):
    def decode(b: bytes):
        im = Image.open(io.BytesIO(b))
        if im.format == "JPEG":
            im.draft(im.mode, (resize, resize))
        im.load()
        return im

    return decode


def decoders(resize: int) -> dict:
    cv2, simplejpeg, pyspng = optional("cv2"), optional("simplejpeg"), optional("pyspng")
    out = {"pillow": pil_decode, "pillow_draft": pil_draft(resize)}
    if cv2 is not None:
        cv2.setNumThreads(1)
        out["opencv"] = lambda b: cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_UNCHANGED)
    if simplejpeg is not None:
        out["simplejpeg"] = lambda b: simplejpeg.decode_jpeg(
            b, colorspace="GRAY" if b"\xff\xc0\x00\x0b" in b[:4096] else "RGB"
        )
        out["simplejpeg_scaled"] = lambda b: simplejpeg.decode_jpeg(b, min_height=resize, min_width=resize)
    if pyspng is not None:
        out["pyspng"] = lambda b: pyspng.load(b)
    return out


def decode_table(srcs: dict, resize: int, repeats: int) -> dict:
    decs = decoders(resize)
    rows: dict = {}
    for _ in range(repeats):
        for src, blobs in srcs.items():
            for name, fn in decs.items():
                if (
                    name in ("pyspng",)
                    and not src.startswith("png")
                    or name.startswith("simplejpeg")
                    and src.startswith("png")
                ):
                    continue
                if name == "pillow_draft" and src.startswith("png"):
                    continue
                rows.setdefault(src, {}).setdefault(name, []).append(per_image_ms(fn, blobs))
    return {s: {k: round(statistics.median(v), 3) for k, v in d.items()} for s, d in rows.items()}


def preprocess_table(spec, srcs: dict, repeats: int) -> dict:
    from featx.images.preprocess import Preprocessor

    pre = Preprocessor.from_spec(spec)
    cases = {"png512_grey": [pil_decode(b) for b in srcs["png512_grey"]]}
    cases["jpeg2048_rgb"] = [pil_decode(b) for b in srcs["jpeg2048_rgb"][:50]]
    cases["jpeg2048_rgb_draft"] = [pil_draft(pre.resize_size)(b) for b in srcs["jpeg2048_rgb"][:50]]

    def gap(g):
        def fn(im):
            w, h = im.size
            s = pre.resize_size / min(w, h)
            return im.resize((round(w * s), round(h * s)), pre.resample, reducing_gap=g)

        return fn

    def normalise(a):
        x = (a[None] if a.ndim == 2 else a.transpose(2, 0, 1)).astype(np.float32) / np.float32(255.0)
        return (x - pre.mean) / pre.std

    rows: dict = {}
    for _ in range(repeats):
        for case, ims in cases.items():
            crops = [pre.crop(im) for im in ims]
            stages = {"resize_crop": pre.crop, "resize_reducing_gap_2": gap(2.0), "resize_reducing_gap_3": gap(3.0)}
            for name, fn in stages.items():
                rows.setdefault(case, {}).setdefault(name, []).append(per_image_ms(fn, ims))
            rows[case].setdefault("normalise", []).append(per_image_ms(normalise, crops))
    return {c: {k: round(statistics.median(v), 3) for k, v in d.items()} for c, d in rows.items()}


def ppp_model(onnx_path, spec, precision: str, in_size: int | None, cache: Path):
    """OpenVINO model taking uint8 NHWC (grey broadcast to 3 channels by the caller), normalised in the graph;
    with ``in_size`` it also resizes from ``in_size`` to the crop size in the graph (bilinear)."""
    import openvino as ov
    from openvino.preprocess import PrePostProcessor, ResizeAlgorithm

    core = ov.Core()
    model = core.read_model(str(onnx_path))
    ppp = PrePostProcessor(model)
    tensor = ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    if in_size:
        tensor.set_spatial_static_shape(in_size, in_size)
        ppp.input().preprocess().resize(ResizeAlgorithm.RESIZE_LINEAR)
    ppp.input().model().set_layout(ov.Layout("NCHW"))
    mean = [255.0 * m for m in spec.mean]
    scale = [255.0 * s for s in spec.std]
    ppp.input().preprocess().convert_element_type(ov.Type.f32).mean(mean).scale(scale)
    model = ppp.build()
    config = {"INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32", "INFERENCE_NUM_THREADS": 1}
    return core.compile_model(model, "CPU", config)


def ingraph_table(resolved, onnx_paths: dict, srcs: dict, batch: int, repeats: int, cache: Path) -> dict:
    from featx.engines.openvino_runtime import OpenVinoRuntime
    from featx.images.preprocess import Preprocessor

    spec = resolved.spec
    pre = Preprocessor.from_spec(spec)
    ims = [pil_decode(b) for b in srcs["png512_grey"][:batch]]
    crops = [pre.crop(im) for im in ims]
    x_float = np.stack([pre(im) for im in ims])
    x_float = np.broadcast_to(x_float, (batch, 3, *x_float.shape[2:])).copy()
    x_u8 = np.stack([np.repeat(c[..., None], 3, -1) for c in crops])
    full = np.stack([np.repeat(np.asarray(im)[..., None], 3, -1) for im in ims])
    out: dict = {}
    for precision, path in onnx_paths.items():
        base = OpenVinoRuntime(path, precision if precision != "int8" else "int8", threads=1)
        u8 = ppp_model(path, spec, precision, None, cache)
        rs = ppp_model(path, spec, precision, full.shape[1], cache)
        ref = base.run(x_float)
        f_u8 = u8.create_infer_request().infer({0: x_u8})[u8.output(0)]
        f_rs = rs.create_infer_request().infer({0: full})[rs.output(0)]

        def cos(a, b):
            a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
            return float(np.min((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)))

        times: dict = {}
        for _ in range(repeats):
            for name, fn in {
                "float_nchw": lambda base=base: base.run(x_float),
                "u8_nhwc_normalise_in_graph": lambda u8=u8: u8.create_infer_request().infer({0: x_u8}),
                "u8_nhwc_resize_in_graph": lambda rs=rs: rs.create_infer_request().infer({0: full}),
            }.items():
                fn()
                t = time.perf_counter()
                for _ in range(3):
                    fn()
                times.setdefault(name, []).append(1000 * (time.perf_counter() - t) / (3 * batch))
        out[precision] = {
            "model_ms_per_image": {k: round(statistics.median(v), 3) for k, v in times.items()},
            "min_cosine_to_featx_path": {
                "u8_nhwc_normalise_in_graph": round(cos(ref, f_u8), 6),
                "u8_nhwc_resize_in_graph": round(cos(ref, f_rs), 6),
            },
        }
    return out


def pipeline_table(resolved, int8_path, srcs_dir: Path, n: int, batch: int, repeats: int) -> dict:
    """img/s of featx's pipeline with the OpenVINO int8 engine: float32 NCHW batches against uint8 pixels."""
    from featx.dataset.manifest import Manifest
    from featx.engines.openvino_runtime import OpenVinoRuntime
    from featx.extract.pipeline import SampleLoader, run_pipeline
    from featx.images.loader import SampleReader
    from featx.images.preprocess import Preprocessor

    spec = resolved.spec
    pre, reader = Preprocessor.from_spec(spec), SampleReader(keep_grey=True)
    todo = list(enumerate(Manifest.load(srcs_dir / f"manifest_{n}.csv")))
    threads = int(os.environ.get("FEATX_BENCH_THREADS", os.cpu_count() or 1))
    plain = OpenVinoRuntime(int8_path, "int8", threads=threads)
    pixel = OpenVinoRuntime(int8_path, "int8", threads=threads, pixels=(spec.mean, spec.std))
    feeds = {
        "float32_nchw": (SampleLoader(reader, pre), plain.run),
        "uint8_pixels": (SampleLoader(reader, pre.pixels), pixel.run_pixels),
    }
    rates: dict = {}
    for _ in range(repeats):
        for name, (loader, compute) in feeds.items():
            t = time.perf_counter()
            run_pipeline(
                todo, loader, compute, lambda *_: None, batch_size=batch, limit=0, label=name, workers=2, progress=False
            )
            rates.setdefault(name, []).append(len(todo) / (time.perf_counter() - t))
    med = {k: round(statistics.median(v), 1) for k, v in rates.items()}
    return {
        "img_per_s": med,
        "runs": {k: [round(x, 1) for x in v] for k, v in rates.items()},
        "ratio_pixels_vs_float": round(med["uint8_pixels"] / med["float32_nchw"], 3),
        "n_images": len(todo),
        "threads": threads,
    }


def draft_table(resolved, exported, srcs: dict) -> dict:
    """Cosine of the features of drafted JPEG decodes to full decodes (fp32 ONNX Runtime)."""
    from featx.engines.runtime import OrtRuntime
    from featx.images.preprocess import Preprocessor

    pre, rt = Preprocessor.from_spec(resolved.spec), OrtRuntime(exported.onnx_path, provider="cpu")
    out = {}
    for src in ("jpeg512_rgb", "jpeg1024_grey", "jpeg1024_rgb", "jpeg2048_grey", "jpeg2048_rgb"):
        blobs = srcs[src][:64]
        full = rt.run(np.stack([pre(pil_decode(b).convert("RGB")) for b in blobs]))
        drafted = rt.run(
            np.stack([pre(pil_draft(max(pre.resize_size, pre.crop_size))(b).convert("RGB")) for b in blobs])
        )
        cos = (full * drafted).sum(1) / np.linalg.norm(full, axis=1) / np.linalg.norm(drafted, axis=1)
        out[src] = {"mean_cosine": round(float(cos.mean()), 5), "min_cosine": round(float(cos.min()), 5)}
    return out


def downstream(resolved, exported, data: Path) -> dict:
    """BreastMNIST's 780 images as 1024-px JPEGs: CV AUC of lite0 features, full decode against draft."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from featx.engines.runtime import OrtRuntime
    from featx.images.preprocess import Preprocessor
    from featx.images.raster import read_image

    folder = data / "breastmnist_jpeg1024"
    folder.mkdir(parents=True, exist_ok=True)
    npz = np.load(HERE.parent.parent / "shared" / "data" / "medmnist" / "breastmnist.npz")
    images = np.concatenate([npz[f"{k}_images"] for k in ("train", "val", "test")])
    y = np.concatenate([npz[f"{k}_labels"] for k in ("train", "val", "test")]).ravel()
    paths = []
    for i, a in enumerate(images):
        p = folder / f"{i:04d}.jpg"
        if not p.exists():
            Image.fromarray(a).resize((1024, 1024), Image.Resampling.BICUBIC).save(p, quality=90)
        paths.append(p)
    pre, rt = Preprocessor.from_spec(resolved.spec), OrtRuntime(exported.onnx_path, provider="cpu")
    out = {}
    for name, draft in (("full_decode", None), ("draft", max(pre.resize_size, pre.crop_size))):
        t = time.perf_counter()
        X = np.concatenate(
            [
                rt.run(np.stack([pre(read_image(p, True, draft)) for p in paths[i : i + 64]]))
                for i in range(0, len(paths), 64)
            ]
        )
        secs = time.perf_counter() - t
        aucs = []
        for seed in range(3):
            cv = StratifiedKFold(10, shuffle=True, random_state=seed)
            model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
            aucs.append(roc_auc_score(y, cross_val_predict(model, X, y, cv=cv, method="predict_proba")[:, 1]))
        out[name] = {
            "cv_auc": round(float(np.mean(aucs)), 4),
            "cv_auc_per_seed": [round(float(a), 4) for a in aucs],
            "extract_s": round(secs, 1),
            "X": X,
        }
    f, d = out["full_decode"].pop("X"), out["draft"].pop("X")
    cos = (f * d).sum(1) / np.linalg.norm(f, axis=1) / np.linalg.norm(d, axis=1)
    out["cosine"] = {"mean": round(float(cos.mean()), 5), "min": round(float(cos.min()), 5)}
    out["auc_change"] = round(out["draft"]["cv_auc"] - out["full_decode"]["cv_auc"], 4)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--weights", default="imagenet")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--data", default=str(HERE / ".data"))
    p.add_argument("--models-dir", default="models_onnx")
    p.add_argument("--out-name", default="datapath_cpu")
    p.add_argument(
        "--downstream", action="store_true", help="BreastMNIST as 1024-px JPEGs: CV AUC, full decode vs draft"
    )
    a = p.parse_args()

    from featx.backbones.export import export_onnx
    from featx.backbones.resolve import resolve_backbone
    from featx.engines.quantize import quantize_int8
    from featx.images.preprocess import Preprocessor

    srcs = sources(a.n, Path(a.data))
    resolved = resolve_backbone(a.backbone, a.weights, None, a.models_dir)
    exported = resolved.exported or export_onnx(resolved.spec, resolved.model, a.models_dir)
    pre = Preprocessor.from_spec(resolved.spec)
    calib = np.stack([pre(pil_decode(b).convert("RGB")) for b in srcs["png512_grey"][:32]])
    int8, _ = quantize_int8(exported.onnx_path, exported.onnx_sha256, calib, ["datapath"] * len(calib), a.models_dir)
    result = {
        "benchmark": "datapath",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": cpu_info(),
        "backbone": resolved.spec.name,
        "n_images": a.n,
        "repeats": a.repeats,
        "decode_ms_per_image": decode_table(srcs, pre.resize_size, a.repeats),
        "preprocess_ms_per_image": preprocess_table(resolved.spec, srcs, a.repeats),
        "in_graph": ingraph_table(
            resolved, {"fp32": exported.onnx_path, "int8": int8}, srcs, a.batch_size, a.repeats, Path(a.models_dir)
        ),
        "pipeline_openvino_int8_png512": pipeline_table(resolved, int8, Path(a.data), a.n, a.batch_size, a.repeats),
        "draft_feature_cosine": draft_table(resolved, exported, srcs),
        **(
            {"draft_downstream_breastmnist_jpeg1024": downstream(resolved, exported, Path(a.data))}
            if a.downstream
            else {}
        ),
        "versions": {
            m: getattr(optional(m), "__version__", None) for m in ("PIL", "cv2", "simplejpeg", "pyspng", "openvino")
        },
    }
    out = HERE / "results" / f"{a.out_name}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("machine",)}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
