"""Draw a benchmark script's JSON results as a PNG (matplotlib, the Agg backend: no display needed).

    python benchmarks/plots.py RESULTS.json OUT.png [--title TITLE]

The scripts that write ``--json FILE`` take ``--plot FILE.png`` too and call
:func:`plot_results` on the same figures. One panel per measurement and unit:
a bar per side with the mean and the stdev as an error bar (the repetitions
are the lists of numbers in the results), single figures as bars of their own,
and series of ``(x, y)`` pairs (RSS over requests) as a line. Counts, ratios
and settings are left out: the plot shows what was timed or weighed.

Needs matplotlib (``pip install ".[bench]"``).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# The unit a key's suffix stands for (the benchmark scripts' naming).
UNITS = {
    "tps": "tokens/s",
    "sps": "sentences/s",
    "mbps": "MB/s",
    "us": "µs",
    "ms": "ms",
    "s": "s",
    "mb": "MB",
}
# Sections whose keys carry no unit suffix, by the script's own naming.
SECTION_UNITS = {
    "pp": "tokens/s",
    "tg": "tokens/s",
    "tg_depth": "tokens/s",
    "tg_small_ctx": "tokens/s",
    "llama_bench_default": "tokens/s",
    "ceiling": "tokens/s",
}
# Lists and figures that are not measurements to draw: token counts, ratios, settings, texts.
SKIP = {
    "tokens",
    "generated",
    "evaluated",
    "texts",
    "head",
    "rows",
    "ratio",
    "ratio_per_rep",
    "client_pp_prompt_tokens",
    "llama_bench_params",
    "lcp_default_settings",
    "threads",
    "reps",
    "rounds",
    "target",
    "depth",
    "num_ctx",
    "n_vocab",
    "n_decodes",
}


def _unit(path: tuple[str, ...]) -> str | None:
    """The unit of the value at ``path``, from the innermost key that has a unit suffix."""
    for key in reversed(path):
        suffix = key.rsplit("_", 1)[-1].lower() if "_" in key else ""
        if suffix in UNITS:
            return UNITS[suffix]
    return SECTION_UNITS.get(path[0]) if path else None


def _label(path: tuple[str, ...]) -> str:
    """A bar's label: the path inside its section, unit suffixes dropped."""
    parts = []
    for key in path:
        head, _, suffix = key.rpartition("_")
        parts.append(head if head and suffix.lower() in UNITS else key)
    return " / ".join(parts).replace("_", " ")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def collect(results: Mapping[str, Any]) -> tuple[dict, dict]:
    """The drawable figures of ``results``.

    Returns ``(bars, lines)``: ``bars[(section, unit)][label] = [values]`` (a
    list of repetitions, or one figure) and ``lines[(section, unit)][label] =
    [(x, y), ...]``.
    """
    bars: dict[tuple[str, str], dict[str, list[float]]] = {}
    lines: dict[tuple[str, str], dict[str, list[tuple[float, float]]]] = {}

    def add(path: tuple[str, ...], values: list[float]) -> None:
        unit = _unit(path)
        if unit is None:
            return
        section = path[0] if len(path) > 1 else ""
        label = _label(path[1:] if len(path) > 1 else path) or path[0]
        bars.setdefault((section, unit), {})[label] = values

    def walk(value: Any, path: tuple[str, ...]) -> None:
        if path and path[-1] in SKIP:
            return
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(v, (*path, str(k)))
        elif _is_number(value):
            if path and _unit(path[-1:]) is not None:  # a single figure with its unit in its name
                add(path, [float(value)])
        elif isinstance(value, list) and value:
            if all(_is_number(v) for v in value):
                add(path, [float(v) for v in value])
            elif all(isinstance(v, (list, tuple)) and len(v) == 2 and all(map(_is_number, v)) for v in value):
                unit = _unit(path) or ""
                lines.setdefault((path[0], unit), {})[_label(path[1:]) or path[0]] = [
                    (float(x), float(y)) for x, y in value
                ]
            elif all(isinstance(v, Mapping) for v in value):
                # One record per repetition (a fresh process each): each numeric field across them.
                keys = {k for v in value for k, x in v.items() if _is_number(x)}
                for k in sorted(keys):
                    walk([v[k] for v in value if _is_number(v.get(k))], (*path, k))

    if _is_builds(results):
        # compare_cpu_builds.py: one row per build, its repetitions under "samples".
        for row in results["results"]:
            for key, values in row["samples"].items():
                bars.setdefault((key, SECTION_UNITS.get(key, "tokens/s")), {})[row["build"]] = values
    else:
        walk(results, ())
    return bars, lines


def _is_builds(results: Mapping[str, Any]) -> bool:
    rows = results.get("results")
    return isinstance(rows, list) and bool(rows) and all(isinstance(r, Mapping) and "samples" in r for r in rows)


def plot_file(text: str) -> Path:
    """An ``argparse`` type for ``--plot FILE.png``: fails at parse time, before anything is measured,
    when matplotlib is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise argparse.ArgumentTypeError('--plot needs matplotlib: pip install ".[bench]"') from None
    return Path(text)


def plot_results(results: Mapping[str, Any], out: str | Path, title: str | None = None) -> Path:
    """Draw ``results`` (a benchmark script's JSON figures) into the PNG file ``out``; returns its path.

    Raises:
        ValueError: nothing in ``results`` is a figure to draw.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars, lines = collect(results)
    panels = [("bar", k, v) for k, v in bars.items()] + [("line", k, v) for k, v in lines.items()]
    if not panels:
        raise ValueError("no figures to plot in these results")
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows), squeeze=False)
    for ax, (kind, (section, unit), series) in zip(axes.flat, panels):
        if kind == "bar":
            labels = list(series)
            means = [statistics.fmean(v) for v in series.values()]
            sds = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in series.values()]
            ax.bar(range(len(labels)), means, yerr=sds, capsize=4, color="#4c72b0")
            ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=8)
            for i, m in enumerate(means):
                ax.annotate(
                    f"{m:.4g}", (i, m), ha="center", va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points"
                )
        else:
            for label, points in series.items():
                ax.plot([x for x, _ in points], [y for _, y in points], marker="o", label=label)
            ax.legend(fontsize=8)
        ax.set_title(section.replace("_", " ") or "results", fontsize=10)
        ax.set_ylabel(unit)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    model = results.get("model") if isinstance(results, Mapping) else None
    heading = title or "benchmark results"
    if model:
        heading += f" ({model})"
    fig.suptitle(heading)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path, help="a JSON file written by a benchmark script's --json")
    ap.add_argument("out", type=Path, help="the PNG file to write")
    ap.add_argument("--title", default=None, help="the figure's title (default: the file's name)")
    args = ap.parse_args(argv)
    results = json.loads(args.results.read_text())
    print(plot_results(results, args.out, args.title or args.results.stem))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
