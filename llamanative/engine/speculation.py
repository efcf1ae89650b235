"""Speculative decoding settings for a completion job, and how a slot is set up with them.

The drafting is llama.cpp's own (``common/speculative.h``, n-gram types) and
the verification happens inside the stepper's batch (see ``stepper.h``): the
engine only chooses, per job, whether and how a slot speculates.

``auto`` is ``ngram-mod`` behind a gate: a slot whose drafts are mostly
rejected stops drafting for a while (doubling each time a retry fails), so
text that does not repeat its context runs as it would without speculation,
while text that copies from it keeps the gain.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import _core

# What ``auto`` drafts with: the type that won on the copy-heavy workloads of
# benchmarks/compare_speculative.py (docs/design/speculation.md): it drafts only from a 24-token match, so
# its drafts are rarely wrong (97 % accepted there) and text that does not copy rarely drafts at all.
AUTO_TYPES = "ngram-mod"

# Draft-model types made for special draft heads, which the stepper does not run; draft-simple (a plain draft
# model of the same vocabulary, the model's DRAFT) it does.
DRAFT_HEAD_TYPES = frozenset({"draft-eagle3", "draft-mtp", "draft-dflash", "draft-dspark"})


@dataclass(frozen=True)
class SpecParams:
    """How a job's slot speculates. Field meanings: ``_core.Stepper.speculate``."""

    types: str  # comma-separated common type names ("auto" is resolved before: see resolve())
    n_max: int = 32
    n_min: int = 0
    ngram_n: int = 0  # 0 = common's default for each type
    ngram_m: int = 0
    min_hits: int = 0
    gate: bool = False


def resolve(
    spec_type: str,
    *,
    n_max: int | None = None,
    n_min: int | None = None,
    ngram_n: int | None = None,
    ngram_m: int | None = None,
    min_hits: int | None = None,
) -> SpecParams | None:
    """The settings a ``spec_type`` value stands for; ``None`` for no speculation.

    ``spec_type`` is ``"none"`` (or empty), ``"auto"``, or comma-separated
    n-gram type names as ``common_speculative_types_from_names`` reads them.

    Raises:
        ValueError: an unknown name, a draft-model type, or a bound out of
            range (the message names it).
    """
    names = [t.strip() for t in spec_type.split(",") if t.strip()]
    if not names or names == ["none"]:
        return None
    gate = names == ["auto"]
    if gate:
        names = AUTO_TYPES.split(",")
    known = set(_core.speculative_types())
    for name in names:
        if name in ("auto", "none"):
            raise ValueError(f'spec_type "{name}" cannot be combined with other types')
        if name in DRAFT_HEAD_TYPES:
            raise ValueError(
                f'spec_type "{name}" needs a draft head made for it, which llamanative does not run; use '
                "draft-simple (a draft model: the model's DRAFT), an n-gram type (ngram-map-k, ngram-simple, "
                "ngram-map-k4v, ngram-mod, ngram-cache) or auto"
            )
        if name not in known:
            raise ValueError(f'unknown spec_type "{name}"; known: auto, none, ' + ", ".join(sorted(known - {"none"})))
    p = SpecParams(
        ",".join(names),
        n_max=32 if n_max is None else n_max,
        n_min=n_min or 0,
        ngram_n=ngram_n or 0,
        ngram_m=ngram_m or 0,
        min_hits=min_hits or 0,
        gate=gate,
    )
    if not 1 <= p.n_max <= 1024:
        raise ValueError(f"spec_draft_max must be 1..1024, got {p.n_max}")
    if not 0 <= p.n_min <= p.n_max:
        raise ValueError(f"spec_draft_min must be 0..spec_draft_max ({p.n_max}), got {p.n_min}")
    return p


def speculate(stepper: _core.Stepper, slot: int, spec: SpecParams | None) -> None:
    """Set up ``slot``'s running request with ``spec`` (``None``: no speculation).

    Raises:
        ValueError: the model cannot speculate (recurrent or hybrid), or common refused the setting.
    """
    if spec is None:
        return
    stepper.speculate(
        slot,
        spec.types,
        n_max=spec.n_max,
        n_min=spec.n_min,
        ngram_n=spec.ngram_n,
        ngram_m=spec.ngram_m,
        min_hits=spec.min_hits,
        gate=spec.gate,
    )
