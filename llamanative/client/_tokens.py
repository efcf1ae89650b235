"""llama-server's ``props``, ``tokenize`` and ``detokenize``, in-process, through the model's prompt pipeline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import __version__
from ..engine import system
from ..errors import StatusError
from ..types import Modalities, PropsResponse, TokenResponse
from ._session import Session


def props(session: Session, model: str, keep_alive: Any) -> PropsResponse:
    prep = session.prepare(model, None, keep_alive)
    with session.use(prep) as entry:
        projector = entry.runner.projector  # what the loaded projector accepts, as llama-server reports it
        return PropsResponse(
            build_info=f"llamanative {__version__}, llama.cpp {system.LLAMA_CPP_COMMIT[:8]}",
            model_path=prep.stored.path,
            n_ctx=entry.runner.n_ctx,
            modalities=Modalities(
                vision=projector is not None and projector.vision, audio=projector is not None and projector.audio
            ),
        )


def tokenize(
    session: Session, model: str, text: str, *, add_special: bool, parse_special: bool, keep_alive: Any
) -> npt.NDArray[np.int32]:
    prep = session.prepare(model, None, keep_alive)
    with session.use(prep) as entry:
        return entry.prompts.tokenize(text, add_special=add_special, parse_special=parse_special)


def token_pieces(session: Session, model: str, tokens: Sequence[int], keep_alive: Any) -> list[TokenResponse]:
    prep = session.prepare(model, None, keep_alive)
    with session.use(prep) as entry:
        try:
            return [TokenResponse(token=piece) for piece in entry.prompts.token_pieces(tokens)]
        except ValueError as exc:
            raise StatusError.bad_request(str(exc)) from exc


def detokenize(session: Session, model: str, tokens: Sequence[int], keep_alive: Any) -> str:
    prep = session.prepare(model, None, keep_alive)
    with session.use(prep) as entry:
        try:
            return entry.prompts.detokenize(tokens)
        except ValueError as exc:
            raise StatusError.bad_request(str(exc)) from exc
