"""llamanative's ``Client.rerank`` against llama-server's ``/rerank`` on the same reranker, measured in one run.

    python benchmarks/compare_rerank.py [--model RERANKER.gguf] [--pairs 1000] [--threads 2] [--reps 3]

Query-document pairs per second: ``--pairs`` pairs (``--queries`` queries,
each with the same number of short documents), one ``Client.rerank`` call
per query against one ``POST /rerank`` per query to llama-server (built from
the vendored tree, started here with ``--rerank -np N`` so that it batches N
pairs a decode, its batch the model's context). Both sides use the same
threads; the repetitions alternate which side goes first, after one warm-up
each. Target: llamanative >= 1.2x llama-server's pairs/s.

The model defaults to the test suite's reranker (MiniLM with a random
classification head, written by ``scripts/make_test_reranker.py``): its
scores mean nothing, its cost is a real BERT cross-encoder's. ``--model``
takes a real one (e.g. a bge-reranker GGUF).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _report import fmt, mean_sd, print_table  # noqa: E402
from compare_llama_cpp_python import minilm_path, sentences  # noqa: E402
from compare_llama_server import Server, alternate, post  # noqa: E402

from llamanative import Client, _core  # noqa: E402

TARGET = 1.2  # llamanative's pairs/s over llama-server's


def test_reranker(outdir: Path) -> Path:
    """The test suite's reranker, written into ``outdir`` by scripts/make_test_reranker.py."""
    script = HERE.parent / "scripts" / "make_test_reranker.py"
    argv = [sys.executable, str(script), str(outdir), "--minilm", str(minilm_path())]
    last = subprocess.run(argv, check=True, capture_output=True, text=True).stdout.splitlines()[-1]
    m = re.fullmatch(r"model=(.+)", last)
    if m is None:
        raise RuntimeError(f"{script.name}: unexpected last line {last!r}")
    return Path(m[1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--server", type=Path, default=None, help="the llama-server executable (default: built from the vendored tree)"
    )
    ap.add_argument("--model", type=Path, default=None, help="reranker GGUF (default: the test suite's)")
    ap.add_argument("--threads", type=int, default=_core.default_n_threads())
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions")
    ap.add_argument("--pairs", type=int, default=1000, help="query-document pairs per repetition")
    ap.add_argument("--queries", type=int, default=4, help="queries (one request each) the pairs are split over")
    ap.add_argument("--parallel", type=int, default=32, help="llama-server -np (pairs it batches per decode)")
    args = ap.parse_args(argv)
    if args.server is None:
        from reference_tools import build_reference_tools

        args.server = build_reference_tools(names=("llama-server",))["llama-server"]
    logs = HERE / ".cache"
    model = args.model or test_reranker(logs / "reranker")
    per_query = max(1, args.pairs // args.queries)
    queries = sentences(args.queries, seed=1)
    docs = sentences(per_query, seed=2)
    n_pairs = per_query * args.queries
    with _core.Model(model, vocab_only=True) as m:
        n_ctx = m.n_ctx_train or 512
    threads = ["-t", str(args.threads), "-tb", str(args.threads)]
    n = args.parallel
    server_args = ["-m", str(model), *threads, "--rerank", "-np", str(n), "-c", str(n_ctx * n)]
    server_args += ["-b", str(n_ctx), "-ub", str(n_ctx), "--no-webui"]

    with Client() as client, Server(args.server, server_args, logs / "llama-server-rerank.log") as srv:

        def ours(rep: int) -> float:
            t0 = time.perf_counter()
            for q in queries:
                r = client.rerank(str(model), q, docs, options={"num_thread": args.threads})
                assert len(r.results) == len(docs)
            return n_pairs / (time.perf_counter() - t0)

        def theirs(rep: int) -> float:
            t0 = time.perf_counter()
            for q in queries:
                r = post(srv.port, "/rerank", {"query": q, "documents": docs})
                assert len(r["results"]) == len(docs)
            return n_pairs / (time.perf_counter() - t0)

        a, b = alternate(args.reps, ours, theirs)

    ratio = mean_sd(a)[0] / mean_sd(b)[0]
    print(
        f"llamanative rerank vs llama-server /rerank (llama.cpp {_core.LLAMA_CPP_COMMIT[:8]}); {model.name}, "
        f"{n_pairs} pairs ({args.queries} queries), {args.threads} threads, llama-server -np {n}, "
        f"{args.reps} repetitions, mean ± stdev"
    )
    print_table(
        [("query-document pairs/s", fmt(a), fmt(b), f"{ratio:.3f}x", f">= {TARGET}x", ratio >= TARGET)],
        reference="llama-server",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
