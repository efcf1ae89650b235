"""``rerank``: documents ordered by a reranker model's relevance scores for a query."""

from __future__ import annotations

import argparse
import json

from ._common import CliError, add_parameter_flag, client, parameters, stdin_text


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rerank",
        help="score documents against a query with a reranker model",
        description="Print the documents best first, one line each: the score, the document's index among "
        "the arguments, and its text (--json: one JSON object per line). With no DOC, each non-empty line of "
        "stdin is a document.",
    )
    p.add_argument("model", help="a stored reranker model name or a .gguf path")
    p.add_argument("query", help="the query")
    p.add_argument("documents", nargs="*", metavar="DOC")
    p.add_argument("-n", "--top-n", type=int, default=None, help="print only the best N")
    p.add_argument("--json", action="store_true", help="one JSON object per line: index, relevance_score, document")
    p.add_argument(
        "--no-truncate", action="store_true", help="fail on a pair longer than the context instead of cutting it"
    )
    p.add_argument("--keepalive", default=None, help="how long the model stays loaded (this process only)")
    add_parameter_flag(p)
    p.set_defaults(func=rerank, more_words="documents")


def rerank(args: argparse.Namespace) -> int:
    docs = list(args.documents)
    if not docs:
        piped = stdin_text()
        docs = [line for line in (piped or "").splitlines() if line.strip()]
    if not docs:
        raise CliError("nothing to rerank: give DOC arguments or pipe lines on stdin")
    resp = client().rerank(
        args.model,
        args.query,
        docs,
        top_n=args.top_n,
        return_documents=True,
        truncate=not args.no_truncate,
        keep_alive=args.keepalive,
        options=parameters(args.parameter) or None,
    )
    for r in resp.results:
        if args.json:
            print(json.dumps({"index": r.index, "relevance_score": r.relevance_score, "document": r.document}))
        else:
            print(f"{r.relevance_score:.6f}\t{r.index}\t{r.document}")
    return 0
