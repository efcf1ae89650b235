"""Report helpers shared by the benchmark scripts: mean ± stdev, and the table of targets."""

from __future__ import annotations

import statistics


def mean_sd(xs: list[float]) -> tuple[float, float]:
    """Mean and sample stdev (0 for a single value)."""
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def fmt(xs: list[float], digits: int = 1) -> str:
    """``mean ± stdev`` with ``digits`` decimals."""
    m, s = mean_sd(xs)
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def print_table(rows, reference: str = "reference") -> None:
    """Rows of (measure, llamanative, reference, figure, target, met): met True/False/None
    prints "met", "MISSED" or nothing."""
    head = ("measure", "llamanative", reference, "figure", "target", "")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(5)]
    for r in [head, *rows]:
        verdict = {True: "met", False: "MISSED", None: ""}.get(r[5], r[5])
        print("  ".join(str(c).ljust(w) for c, w in zip(r[:5], widths)) + "  " + verdict)
