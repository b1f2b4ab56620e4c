"""`featx extract --ray` on a local 2-CPU Ray instance gives the same store as the single-process run."""

import h5py
import numpy as np
import pytest
import ray  # part of the test extra (featx[test]): a missing Ray fails here, it is never skipped
from helpers import stored
from test_extract_engine import LITE0

from featx.api import extract
from featx.dataset.manifest import Manifest, Sample
from featx.store.open import open_store
from featx.store.store import FAILED


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.slow
def test_ray_store_equals_single_process_store(local_ray, reference, demo_subset, models_dir, tmp_path):
    ref_store, ref_X, ref_ids = reference
    m = Manifest.load(demo_subset / "subset.csv")
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    m = Manifest([*m, Sample(sample_id="zz_broken", path=bad, label="malignant", split="train")])
    s = extract(m, LITE0, tmp_path / "ray.h5", models_dir=models_dir, batch_size=8, ray="local", progress=False)
    assert (s.n_extracted, len(s.failures)) == (120, 1) and "broken.png" in s.failures[0][1]
    got = stored(tmp_path / "ray.h5", LITE0)
    assert got.ids[:120].tolist() == ref_ids.tolist()
    np.testing.assert_array_equal(got.X[:120], ref_X)
    assert got.filled[:120].all() and not got.filled[120] and got.status[120] == FAILED
    with open_store(tmp_path / "ray.h5") as st, open_store(ref_store) as ref:
        for c in ("sha256", "source", "stat", "pixels"):  # what each row was computed from, as the local run has it
            assert st.sources(LITE0)[c][:120].tolist() == ref.sources(LITE0)[c].tolist()
        assert st.provenance(LITE0)["spec"] == ref.provenance(LITE0)["spec"]
        np.testing.assert_array_equal(st.signatures(LITE0)[:120], ref.signatures(LITE0))
        # the rows came in the actors' own shards: the driver listed them (after the register's record of sources)
        workers = [e["file"] for e in st.parts(LITE0)[1:]]
        assert workers and all(h5py.File(st.data_dir / f).attrs["feature_set"] == LITE0 for f in workers)
    assert not list((tmp_path / "ray.h5.d" / "writers").glob("*.incoming"))  # adopted, then cleared
    # a rerun on Ray resumes like a local one: only the broken sample is retried
    s2 = extract(m, LITE0, tmp_path / "ray.h5", models_dir=models_dir, batch_size=8, ray="local", progress=False)
    assert (s2.n_already, s2.n_extracted, len(s2.failures)) == (120, 0, 1)
