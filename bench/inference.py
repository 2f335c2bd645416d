"""Inference benchmark (not a test): app throughput through a predict job against a bare onnxruntime loop
over the same preprocessed arrays, and the single-item latency overhead of POST /api/items/{id}/predict.

The model is a small real CNN built here with the onnx helper API (3 conv layers on 96×96×3 PCam patches,
~70 M multiply-adds per patch; random weights — the numbers are about plumbing, not accuracy).

    python bench/inference.py [--patches 1536] [--batch 64]

Prints items/s for both and ours/bare (target ≥ 0.8), and per-item latency of the endpoint vs session.run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CARD = """name: bench-cnn
task: classify
input: {layout: NCHW, size: [96, 96], channels: 3, scale: 0.00392156862745, mean: [0.7, 0.6, 0.7], std: [0.2, 0.2, 0.2]}
output: {kind: logits, classes: [normal, tumor]}
applies_to: [pcam]
"""


def cnn(path: Path, outputs: int = 2, output: str = "logits") -> Path:
    """3 conv layers → global average pool → a [64, outputs] layer named `output`: a small classifier's (or, with
    `output="embedding"`, an embedder's) shape and cost, weights seeded."""
    rng = np.random.default_rng(0)

    def w(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.05).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["image", "w1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Conv", ["r2", "w3"], ["c3"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c3"], ["r3"]),
        helper.make_node("GlobalAveragePool", ["r3"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "w4", "b4"], [output], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "bench-cnn", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 96, 96])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["N", outputs])],
        initializer=[w("w1", 32, 3, 3, 3), w("w2", 64, 32, 3, 3), w("w3", 64, 64, 3, 3), w("w4", outputs, 64),
                     numpy_helper.from_array(np.zeros(outputs, np.float32), "b4")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patches", type=int, default=1536)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    # everything the run writes (database, PCam tree, model, stored model copy: ~44 MB) lives in one temporary
    # directory, removed however the run ends
    with tempfile.TemporaryDirectory(prefix="medview-bench-infer-") as tmp:
        return run(args, Path(tmp))


def run(args: argparse.Namespace, tmp: Path) -> int:
    from fastapi.testclient import TestClient

    from app.config import Settings
    from app.datasets.base import Image2D
    from app.datasets.ingest import ingest_path
    from app.datasets.pcam.synth import file_name, generate_pcam
    from app.db.migrate import upgrade
    from app.db.models import Model
    from app.db.session import make_engine, make_session_factory
    from app.inference.card import card_from_text
    from app.inference.jobs import create_predict_job, run_job
    from app.inference.preprocess import prepare_batch
    from app.inference.registry import RuntimeCache, add_model
    from app.main import create_app

    settings = Settings(_env_file=None, database_url=f"sqlite:///{tmp}/mv.db", data_dir=tmp / "data",
                        allowed_hosts="testserver",
                        data_roots=str(tmp), inference_batch=args.batch, device="auto")
    upgrade(settings.database_url)
    root = generate_pcam(tmp / "pcam", n_per_split=(args.patches, 16, 16), seed=1).root
    engine = make_engine(settings.database_url)
    try:
        dataset_id = ingest_path(engine, settings, root, kind="pcam", name="pcam").dataset_id
        model_path = cnn(tmp / "bench_cnn.onnx")
        factory = make_session_factory(engine)
        with factory() as session, model_path.open("rb") as fh:
            model = add_model(session, settings, fh, model_path.name, card_text=CARD)
            model_id = model.id

        # bare: the same patches, preprocessed once up front, then session.run over batches
        import h5py

        with h5py.File(root / file_name("train", "x")) as f:
            patches = f["x"][:]
        card = card_from_text(CARD)
        arrays, _ = prepare_batch([Image2D(p) for p in patches], card)
        sess = ort.InferenceSession(str(model_path), providers=ort.get_available_providers())
        sess.run(None, {"image": arrays[: args.batch]})
        t = time.perf_counter()
        for s in range(0, len(arrays), args.batch):
            sess.run(None, {"image": arrays[s:s + args.batch]})
        bare = len(arrays) / (time.perf_counter() - t)

        # ours: a predict job over the train split (reads patches, preprocesses, runs, writes predictions in bulk)
        runtimes = RuntimeCache()
        with factory() as session:
            job = create_predict_job(session, model_id, dataset_id, {"split": ["train"]})
            job_id = job.id
            # the app keeps sessions loaded and reused: warm this process's session once, as the bare loop is
            runtimes.get(session.get(Model, model_id), settings.device).run(arrays[: args.batch])
        t = time.perf_counter()
        status = run_job(engine, settings, runtimes, job_id)
        ours = args.patches / (time.perf_counter() - t)
        assert status == "done", status

        # single item: POST /api/items/{id}/predict (runtime already loaded) vs one session.run
        with TestClient(create_app(settings)) as client:
            from app.accounts import tokens, users

            with factory() as session:  # a reviewer's API token: predicting needs that role
                reviewer = users.add_user(session, "bench", "reviewer", "bench-password-123")
                client.headers["Authorization"] = f"Bearer {tokens.create_token(session, reviewer, 'bench')[0]}"
            ids = [i["id"] for i in client.get(f"/api/datasets/{dataset_id}/items",
                                               params={"split": "valid", "limit": 16}).json()["items"]]
            client.post(f"/api/items/{ids[0]}/predict", json={"model_id": model_id})
            lat = []
            for item_id in ids:
                t = time.perf_counter()
                r = client.post(f"/api/items/{item_id}/predict", json={"model_id": model_id})
                lat.append(time.perf_counter() - t)
                assert r.status_code == 200, r.text
        one = []
        for i in range(16):
            t = time.perf_counter()
            sess.run(None, {"image": arrays[i:i + 1]})
            one.append(time.perf_counter() - t)

        print(f"providers: {sess.get_providers()}; {args.patches} patches, batch {args.batch}")
        print(f"bare onnxruntime loop (preprocessed arrays)  {bare:8.1f} items/s")
        print(f"ours: predict job (read+preprocess+run+write) {ours:8.1f} items/s")
        print(f"ours/bare = {ours / bare:.2f}  ({'meets' if ours / bare >= 0.8 else 'BELOW'} the 0.8 target)")
        endpoint, bare_one = statistics.median(lat) * 1e3, statistics.median(one) * 1e3
        print(f"single item: POST /predict median {endpoint:.2f} ms vs session.run {bare_one:.2f} ms "
              f"(overhead {endpoint - bare_one:.2f} ms)")
        return 0
    finally:
        engine.dispose()  # no connection left open on a directory about to be removed


if __name__ == "__main__":
    raise SystemExit(main())
