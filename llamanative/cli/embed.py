"""``embed``: embeddings of texts, as JSON lines or a ``.npy`` matrix."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from ._common import CliError, add_parameter_flag, client, parameters, stdin_text
from ._format import json_vector


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "embed",
        help="embed texts with an embedding model",
        description="Print one JSON array per text (L2-normalised float32), or write them as an N x D float32 "
        "matrix with --output. With no TEXT, each non-empty line of stdin is a text.",
    )
    p.add_argument("model", help="a stored model name or a .gguf path")
    p.add_argument("texts", nargs="*", metavar="TEXT")
    p.add_argument("-o", "--output", metavar="FILE.npy", help="write the matrix with numpy.save instead of printing")
    p.add_argument("--dimensions", type=int, default=None, help="keep the first N values (re-normalised)")
    p.add_argument(
        "--no-truncate", action="store_true", help="fail on a text longer than the context instead of cutting it"
    )
    p.add_argument("--keepalive", default=None, help="how long the model stays loaded (this process only)")
    add_parameter_flag(p)
    p.set_defaults(func=embed, more_words="texts")


def embed(args: argparse.Namespace) -> int:
    texts = list(args.texts)
    if not texts:
        piped = stdin_text()
        texts = [line for line in (piped or "").splitlines() if line.strip()]
    if not texts:
        raise CliError("nothing to embed: give TEXT arguments or pipe lines on stdin")
    resp = client().embed(
        args.model,
        texts,
        truncate=not args.no_truncate,
        dimensions=args.dimensions,
        keep_alive=args.keepalive,
        options=parameters(args.parameter) or None,
    )
    matrix = resp.as_array()
    if args.output:
        with open(args.output, "wb") as f:  # an open file: numpy.save must not append ".npy" to the name
            np.save(f, matrix)
        print(f"wrote {matrix.shape[0]} embeddings of {matrix.shape[1]} dimensions to {args.output}", file=sys.stderr)
        return 0
    for row in matrix:
        print(json_vector(row))
    return 0
