"""The page of ``featx audit``: near-copy pairs with thumbnails side by side, most similar first."""

from __future__ import annotations

import base64
import io
from pathlib import Path

from featx.dataset.sample import Sample
from featx.errors import FeatxError
from featx.images.loader import SampleReader
from featx.report.html import e, page

THUMB = 128  # pixels, the longer side


def _thumbnail(reader: SampleReader, row: dict, side: str) -> str:
    """An <img> of one side of a pair, or a line saying why it cannot be shown."""
    path, slice_ = row[f"path_{side}"], int(row.get(f"slice_{side}", -1))
    try:
        im = reader(Sample(sample_id=row[f"id_{side}"], path=Path(path), slice=None if slice_ < 0 else slice_))
    except (FeatxError, OSError) as exc:
        return f"<span class='note'>cannot show: {e(str(exc))}</span>"
    im.thumbnail((THUMB, THUMB))
    if max(im.size) < THUMB:  # small images (28 px) shown large enough to judge
        scale = THUMB / max(im.size)
        im = im.resize((round(im.width * scale), round(im.height * scale)))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return f'<img src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}" alt="{e(row[f"id_{side}"])}">'


def _side(row: dict, side: str) -> str:
    info = f"{row[f'id_{side}']}<br>subject {row[f'subject_{side}'] or '-'}, {row[f'split_{side}'] or '-'}"
    return f"{info}, label {row[f'label_{side}'] or '-'}<br><code>{e(Path(row[f'path_{side}']).name)}</code>"


def write_audit_page(res, path: Path, max_shown: int = 200) -> Path:
    """``audit.html``: the summary, then the first ``max_shown`` pairs (thumbnails, ids, subjects, cosine)."""
    reader = SampleReader("minmax", cache_volumes=2, keep_grey=True)
    rows = []
    for p in res.pairs[:max_shown]:
        rows.append(
            "<tr>"
            + f"<td>{_thumbnail(reader, p, 'a')}<br>{_side(p, 'a')}</td>"
            + f"<td>{_thumbnail(reader, p, 'b')}<br>{_side(p, 'b')}</td>"
            + f"<td>embedding {p['cosine']:.4f}"
            + (f"<br>signature {p['signature']:.4f}" if p.get("signature") is not None else "")
            + f"{'<br>exact copy' if p['exact'] else ''}</td></tr>"
        )
    more = (
        f"<p class='note'>... and {len(res.pairs) - max_shown} more pairs in pairs.csv.</p>"
        if len(res.pairs) > max_shown
        else ""
    )
    body = (
        f"<p>{e(res.summary())}.</p><p class='note'>Embedding: cosine of the stored embeddings, centred on their "
        "mean. Signature: cosine of the images' low-frequency pixel signatures (the better of as-is and mirrored). "
        "A pair is two names for one picture when it is the same image re-encoded, resized, cropped a little, "
        "mirrored or brightened; neighbouring slices of one volume, or two views of one patient, are alike but "
        "not copies. Accept the joins with 'featx audit --manifest M --write-manifest joined.csv'.</p>"
        + "<table><tr><th>a</th><th>b</th><th>cosine</th></tr>"
        + "".join(rows)
        + "</table>"
        + more
    )
    path.write_text(page(f"featx audit: {res.feature_set}", body))
    return path
