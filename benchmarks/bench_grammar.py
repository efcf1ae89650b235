"""The cost of grammar-constrained sampling (``format=<JSON schema>``) per generated token.

    python benchmarks/bench_grammar.py [--model PATH] [--threads N] [--reps 5] [--json FILE] [--plot FILE.png]

Measured in one run, on one model, with the sampler chain the Client builds
(``engine.sampling.make_sampler``) and the grammar ``common`` builds for a chat
request with a JSON schema (an object of six fields, one of them an array and
one a nested object), exactly as ``client.chat(format=schema)`` gets them:

- constrained: the chat prompt, then sample + decode until the model ends the
  JSON (end of generation): N tokens;
- unconstrained: the same prompt, seed and sampler settings without the
  grammar, end-of-generation tokens banned (logit bias -inf) so that it
  generates the same N tokens over the same positions.

The two run in lockstep, token by token, on two sequences of one context
(each token decoded on its own, as a lone request would be): load from
elsewhere on the machine then slows both alike instead of skewing the ratio.
Each repetition uses its own seed (so N varies between repetitions).
Compared per token, never in total: tokens/s mean ± stdev over the
repetitions, and the ratio against the target (constrained at most 15%
slower: ratio >= 0.87). Per token, the time is split into sampling and
decoding.

The grammar is checked after the chain picks a token (llama.cpp ``common``'s
order): an accepted pick costs one check, a rejected one a pass over the whole
vocabulary and a second pick. Both paths are also timed alone on fixed logits
(one decode, then sampling only), and the share of rejected tokens in the
runs is reported: that is where the constrained time goes.

Use ``--json FILE`` to keep the figures, ``--plot FILE.png`` to draw them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from _report import mean_sd
from plots import plot_file, plot_results

from llamanative import _core
from llamanative.engine.sampling import SamplingParams, make_sampler
from llamanative.fetch import fetch_model
from llamanative.prompting.render import grammar_fields

TARGET_RATIO = 0.87

# A typical structured-output request: six fields, a nested array and a nested object.
SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 24},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "email": {"type": "string", "maxLength": 40},
        "active": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 16}, "minItems": 1, "maxItems": 4},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 24}, "country": {"type": "string", "maxLength": 24}},
            "required": ["city", "country"],
        },
    },
    "required": ["name", "age", "email", "active", "tags", "address"],
}
QUESTION = "Invent a customer record with name, age, email, active flag, tags and address. Reply in JSON."
MAX_TOKENS = 512  # the schema bounds an answer well below this
CONSTRAINED, FREE = 0, 1  # the sequence ids of the two runs


@dataclass
class Run:
    """One generation: each token is one sample, then one decode."""

    tokens: list[int] = field(default_factory=list)
    samples_ns: list[int] = field(default_factory=list)  # each token's sampling time
    decode_ns: int = 0

    @property
    def n(self) -> int:
        return len(self.tokens)

    @property
    def sample_ns(self) -> int:
        return sum(self.samples_ns)

    @property
    def total_ns(self) -> int:
        return self.sample_ns + self.decode_ns

    @property
    def tokens_per_s(self) -> float:
        return self.n / (self.total_ns / 1e9)


class Bench:
    """A model, one two-sequence context, and the chat prompt + grammar of the structured-output request."""

    def __init__(self, model: _core.Model, threads: int) -> None:
        self.model = model
        self.vocab = model.vocab
        params = _core.ChatTemplates(model).apply(
            {"messages": [{"role": "user", "content": QUESTION}], "json_schema": SCHEMA}
        )
        self.grammar = grammar_fields(params, self.vocab)  # grammar + the generation-prompt prefill
        self.prompt = self.vocab.tokenize(params["prompt"], add_special=True, parse_special=True)
        n_seq = len(self.prompt) + MAX_TOKENS + 8
        self.ctx = _core.Context(model, n_ctx=2 * n_seq, n_batch=512, n_seq_max=2, n_threads=threads)
        self.batch = _core.Batch(512)
        self.no_eog = {t: float("-inf") for t in range(self.vocab.n_vocab) if self.vocab.is_eog(t)}
        # For timing the two grammar paths: a token that may open the answer, and one that may not.
        self.open_token = self._single_token("{")
        self.bad_token = int(self.vocab.tokenize("Hello", add_special=False)[0])

    def _single_token(self, text: str) -> int:
        toks = self.vocab.tokenize(text, add_special=False)
        if len(toks) != 1:
            raise RuntimeError(f"{text!r} is not one token in this vocabulary")
        return int(toks[0])

    def _prefill(self) -> None:
        """Both sequences hold the prompt; the logits are its last token's."""
        self.ctx.clear(False)
        n = len(self.prompt)
        for start in range(0, n, 512):
            chunk = self.prompt[start : start + 512]
            self.batch.clear()
            self.batch.add_sequence(chunk, start, CONSTRAINED, output="last" if start + len(chunk) == n else "none")
            self.ctx.decode(self.batch)
        self.ctx.seq_cp(CONSTRAINED, FREE)

    def _decode(self, token: int, pos: int, seq: int) -> int:
        self.batch.clear()
        self.batch.add(token, pos, seq, True)
        t0 = time.perf_counter_ns()
        self.ctx.decode(self.batch)
        return time.perf_counter_ns() - t0

    @staticmethod
    def _sample(sampler: _core.Sampler, ctx: _core.Context) -> tuple[int, int]:
        t0 = time.perf_counter_ns()
        tok = sampler.sample(ctx, -1)
        return tok, time.perf_counter_ns() - t0

    def pair(self, seed: int) -> tuple[Run, Run]:
        """The constrained and the unconstrained run, token by token, until the constrained one ends."""
        # The Client's default sampler settings (SamplingParams' defaults) with a fixed seed.
        cons_s = make_sampler(self.model, SamplingParams(seed=seed, **self.grammar), n_ctx=self.ctx.n_ctx_seq)
        free_s = make_sampler(self.model, SamplingParams(seed=seed, logit_bias=self.no_eog), n_ctx=self.ctx.n_ctx_seq)
        cons, free = Run(), Run()
        try:
            self._prefill()
            # Both first tokens come from the prompt's logits, before any decode overwrites them.
            tc, sc = self._sample(cons_s, self.ctx)
            tf, sf = self._sample(free_s, self.ctx)
            pos = len(self.prompt)
            # The closing sample (end of generation) makes no token: it is neither counted nor timed,
            # and neither is the unconstrained sample drawn beside it.
            while not self.vocab.is_eog(tc) and cons.n < MAX_TOKENS:
                cons.tokens.append(tc)
                cons.samples_ns.append(sc)
                cons.decode_ns += self._decode(tc, pos, CONSTRAINED)
                tc, sc = self._sample(cons_s, self.ctx)
                free.tokens.append(tf)
                free.samples_ns.append(sf)
                free.decode_ns += self._decode(tf, pos, FREE)
                tf, sf = self._sample(free_s, self.ctx)
                pos += 1
        finally:
            cons_s.close()
            free_s.close()
        if cons.n >= MAX_TOKENS:
            raise RuntimeError(f"seed {seed}: the constrained answer did not end within {MAX_TOKENS} tokens")
        return cons, free

    def sampler_alone(self, path: str, n: int) -> list[float]:
        """ms per sample on fixed logits (the prompt's last), for ``n`` fresh samplers: no decode at all.

        ``path``: "free" (no grammar), "accepted" (the grammar checks the
        chain's pick and accepts it: one token checked) or "rejected" (it
        rejects it: the grammar is applied to the whole vocabulary and the
        chain samples again). The pick is forced with a logit bias: "{", which
        may open the answer, or "Hello", which may not.
        """
        self._prefill()
        out = []
        for seed in range(n):
            forced = self.open_token if path != "rejected" else self.bad_token
            p = SamplingParams(seed=seed, logit_bias={forced: 1e9}, **(self.grammar if path != "free" else {}))
            sampler = make_sampler(self.model, p, n_ctx=self.ctx.n_ctx_seq)
            tok, ns = self._sample(sampler, self.ctx)
            sampler.close()
            out.append(ns / 1e6)
            if (tok == forced) != (path != "rejected"):
                raise RuntimeError(f"{path}: sampled {self.vocab.token_text(tok)!r}, the forcing did not work")
        return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="GGUF model (default: SmolLM2-135M Q4_1)")
    ap.add_argument("--threads", type=int, default=_core.default_n_threads())
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument("--plot", type=plot_file, default=None, help="also draw the figures as a PNG here (matplotlib)")
    args = ap.parse_args()
    _core.set_log_level("error")
    model_path = args.model or fetch_model("smollm2")
    bench = Bench(_core.Model(model_path), args.threads)

    print(
        f"model {model_path.name} (vocabulary {bench.vocab.n_vocab} tokens), {args.threads} threads, "
        f"{args.reps} repetitions"
    )
    print(
        f"llama.cpp {_core.LLAMA_CPP_COMMIT[:10]}; prompt {len(bench.prompt)} tokens; "
        f"grammar {len(bench.grammar['grammar'])} bytes of GBNF"
    )

    bench.pair(10_000)  # warm-up: page the weights in, settle the allocators
    cons: list[Run] = []
    free: list[Run] = []
    for rep in range(args.reps):
        c, f = bench.pair(rep)
        cons.append(c)
        free.append(f)
        print(
            f"  rep {rep}: {c.n:3d} tokens  constrained {c.tokens_per_s:7.1f} t/s  "
            f"unconstrained {f.tokens_per_s:7.1f} t/s  ratio {c.tokens_per_s / f.tokens_per_s:.3f}"
        )
    text = bench.vocab.detokenize(cons[0].tokens).strip()
    json.loads(text.removeprefix("```json").removesuffix("```"))  # it really was the JSON answer

    (cm, cs), (fm, fs) = mean_sd([r.tokens_per_s for r in cons]), mean_sd([r.tokens_per_s for r in free])
    ratios = [c.tokens_per_s / f.tokens_per_s for c, f in zip(cons, free)]
    rm, rs = mean_sd(ratios)

    def per_token_ms(runs: list[Run], attr: str) -> tuple[float, float]:
        return mean_sd([getattr(r, attr) / r.n / 1e6 for r in runs])

    print(f"\n{'':<16}{'tokens/s':>18}{'ms/token':>12}{'sample ms':>16}{'decode ms':>16}")
    for label, runs, (m, s) in (("unconstrained", free, (fm, fs)), ("constrained", cons, (cm, cs))):
        tot, smp, dec = (per_token_ms(runs, a) for a in ("total_ns", "sample_ns", "decode_ns"))
        print(
            f"{label:<16}{m:>10.1f} ± {s:<6.1f}{tot[0]:>12.2f}{smp[0]:>9.2f} ± {smp[1]:<5.2f}"
            f"{dec[0]:>9.2f} ± {dec[1]:<5.2f}"
        )
    verdict = "met" if cm / fm >= TARGET_RATIO else "MISSED"
    print(
        f"\nratio constrained/unconstrained tokens/s: {cm / fm:.3f} (per repetition {rm:.3f} ± {rs:.3f}); "
        f"target >= {TARGET_RATIO}: {verdict}"
    )

    n_alone = 50
    alone = {path: bench.sampler_alone(path, n_alone) for path in ("free", "accepted", "rejected")}
    med = {path: statistics.median(xs) for path, xs in alone.items()}
    print(
        f"\nsampler alone on fixed logits (start of the answer, median of {n_alone}): "
        f"no grammar {med['free']:.3f} ms; grammar accepts the pick {med['accepted']:.3f} ms; "
        f"grammar rejects it {med['rejected']:.3f} ms (a pass over {bench.vocab.n_vocab} tokens, then a resample)"
    )
    # Each constrained token took one of the two paths: their times are orders of magnitude apart.
    cut = (med["accepted"] * med["rejected"]) ** 0.5 * 1e6
    slow_ms = [t / 1e6 for r in cons for t in r.samples_ns if t > cut]
    fast_ms = [t / 1e6 for r in cons for t in r.samples_ns if t <= cut]
    n_all = len(slow_ms) + len(fast_ms)
    print(
        f"in the constrained runs: {len(slow_ms)} of {n_all} tokens ({100 * len(slow_ms) / n_all:.1f}%) took the "
        f"rejected path (median {statistics.median(slow_ms) if slow_ms else 0.0:.3f} ms), the others "
        f"{statistics.median(fast_ms):.3f} ms; rejections are "
        f"{100 * sum(slow_ms) / (sum(slow_ms) + sum(fast_ms)):.0f}% of the constrained sampling time"
    )

    figures = {
        "model": model_path.name,
        "n_vocab": bench.vocab.n_vocab,
        "threads": args.threads,
        "tokens": [r.n for r in cons],
        "constrained_tps": [r.tokens_per_s for r in cons],
        "unconstrained_tps": [r.tokens_per_s for r in free],
        "ratio": cm / fm,
        "ratio_per_rep": ratios,
        "target": TARGET_RATIO,
        "constrained_sample_ms": [r.sample_ns / r.n / 1e6 for r in cons],
        "unconstrained_sample_ms": [r.sample_ns / r.n / 1e6 for r in free],
        "sampler_alone_ms": alone,
        "rejected_tokens": len(slow_ms),
    }
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    if args.plot:
        plot_results(figures, args.plot, "grammar-constrained sampling")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
