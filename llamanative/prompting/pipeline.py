"""PromptPipeline: one loaded model's text side, between the API's types and the engine's tokens.

A request's messages go in, a :class:`Prompt` comes out: the tokens the
engine evaluates, the grammar and stop strings the sampler needs, and the
parser that reads the output back into content, thinking and tool calls.
The engine's tokens and log probabilities come back through it as text and
``Logprob`` objects. Everything it does goes through the model's own
vocabulary and chat templates, via llama.cpp's ``common``.

One pipeline is kept per loaded model (``engine.scheduler.Loaded.prompts``)
and parses the model's chat templates once, on first use.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from .. import _core
from ..errors import MediaError, StatusError
from ..types import Audio, Image, Logprob, Message, ThinkValue, Tool
from . import generic_tools as generic
from . import media as media_lib
from .logprobs import TokenLogprobsLike, to_logprobs
from .messages import json_schema_of, oai_messages
from .parse import OutputParser, ReplyParser
from .render import Rendered, render_chat, schema_grammar, tool_dumps

Tokens = npt.NDArray[np.int32]


@dataclass
class Prompt:
    """A prompt ready for the engine, and how to read what the model writes after it."""

    tokens: Tokens
    text: str  # the prompt as rendered (``debug_render_only`` shows it)
    grammar: dict = field(default_factory=dict)  # SamplingParams grammar fields
    stops: tuple[str, ...] = ()  # stop strings the template adds
    parser: ReplyParser | None = None  # None: the output is the content as it is
    media: dict[int, _core.MediaChunk] = field(default_factory=dict)  # position of each media run -> its chunk
    image_count: int = 0
    audio_count: int = 0


class PromptPipeline:
    """Chat templates, tokenizer and output parsing of one loaded model.

    Args:
        model: the loaded model (its vocabulary and the chat templates in its GGUF).
        projector: its multimodal projector, if it has one (images and audio in messages need it).
    """

    def __init__(self, model: _core.Model, projector: _core.Projector | None = None) -> None:
        self._model = model
        self.projector = projector
        self._vocab = model.vocab
        self._templates: _core.ChatTemplates | None = None
        self._caps: dict[str, bool] | None = None

    # -- what the model's template and vocabulary support -------------------------------
    def _chat_templates(self, override: str | None = None) -> _core.ChatTemplates:
        """The model's parsed chat templates, kept for the pipeline's life (or a one-off override)."""
        if override:
            return _core.ChatTemplates(self._model, override)
        if self._templates is None:
            self._templates = _core.ChatTemplates(self._model)
        return self._templates

    @property
    def caps(self) -> dict[str, bool]:
        """What the model's chat template supports (``common``'s names: ``supports_thinking``, ...)."""
        if self._caps is None:
            self._caps = self._chat_templates().caps()
        return self._caps

    @property
    def supports_thinking(self) -> bool:
        return bool(self.caps.get("supports_thinking"))

    @property
    def supports_insert(self) -> bool:
        """Whether the vocabulary has the fill-in-the-middle tokens."""
        v = self._vocab
        return min(v.fim_pre, v.fim_suf, v.fim_mid) >= 0

    @property
    def n_vocab(self) -> int:
        return self._vocab.n_vocab

    # -- prompts ----------------------------------------------------------------------
    def chat(
        self,
        messages: list[Message],
        *,
        system: str | None,
        tools: list[Tool],
        tool_choice: Any,
        format: Any,
        think: ThinkValue | None,
        n_ctx: int,
        truncate: bool,
    ) -> Prompt:
        """The prompt of a conversation, rendered with the model's template.

        ``format`` is the request's (``"json"`` or a JSON schema, see
        :func:`.messages.json_schema_of`). A template without tool syntax gets
        the generic JSON form (:mod:`.generic_tools`). A conversation longer
        than ``n_ctx`` tokens loses its oldest non-system messages (as
        Ollama), never part of one, unless ``truncate`` is False.

        Raises:
            StatusError: 400 for a tool choice naming no tool, a bad
                ``format`` or tool parameter pattern, a conversation the
                template rejects, or one that does not fit.
        """
        caps = self.caps
        try:
            tools, mode = generic.chosen_tools(list(tools), tool_choice)
        except ValueError as exc:
            raise StatusError.bad_request(str(exc)) from exc
        schema = json_schema_of(format)
        tool_dumps(tools)  # a 400 naming the tool for a parameter pattern the grammar cannot enforce
        use_generic = bool(tools) and not caps.get("supports_tool_calls")
        templates = self._chat_templates()
        # Each message with the media decoded from its images and audio (decoded once, before any truncation).
        turns = [(m, self._decoded(m.images, m.audio)) for m in messages]
        while True:
            messages = [m for m, _ in turns]
            marked = [self._marked(m, len(media)) for m, media in turns]
            msgs = oai_messages(marked, system)
            if use_generic:
                msgs = generic.rewrite_messages(msgs, tools, mode, bool(caps.get("supports_system_role")))
                reply = schema if mode == "none" else generic.reply_schema(tools, mode, schema)
                rendered = render_chat(templates, self._vocab, msgs, None, None, reply, think)
            else:
                rendered = render_chat(templates, self._vocab, msgs, tools, mode if tools else None, schema, think)
            media = [x for _, ms in turns for x in ms]
            mp = self._tokenize_media(rendered.prompt, media, add_special=True, parse_special=True)
            tokens = mp.tokens
            if len(tokens) < n_ctx:
                break
            droppable = [i for i, m in enumerate(messages[:-1]) if m.role != "system"]
            if not truncate or not droppable:
                raise StatusError.bad_request(
                    f"the prompt has {len(tokens)} tokens, more than the context length of {n_ctx}"
                )
            del turns[droppable[0]]
        parser: ReplyParser = OutputParser(rendered.params)
        if use_generic and mode != "none":
            parser = generic.GenericReplyParser(parser)
        return Prompt(
            tokens, rendered.prompt, rendered.grammar, rendered.stops, parser, mp.media, mp.image_count, mp.audio_count
        )

    # -- media ------------------------------------------------------------------------
    def _decoded(self, images: Sequence[Image] | None, audio: Sequence[Audio] | None = None) -> list[_core.Media]:
        """A message's media decoded: its images, then its audio clips (the order of their markers).

        Raises:
            StatusError: 400 for media the model's projector does not take (or
                a model without one) and for a bad file.
        """
        media: list[_core.Media] = []
        kinds: tuple[tuple[Literal["image", "audio"], Sequence[Image] | Sequence[Audio] | None], ...] = (
            ("image", images),
            ("audio", audio),
        )
        for kind, items in kinds:
            if not items:
                continue
            ability = "vision" if kind == "image" else "audio"
            if self.projector is None:
                raise StatusError.bad_request(f"the model does not support {ability}: it has no projector")
            if not (self.projector.vision if kind == "image" else self.projector.audio):
                raise StatusError.bad_request(
                    f"the model does not support {ability}: its projector has no {ability} encoder"
                )
            try:
                media += media_lib.load_media(self.projector, [x.to_bytes() for x in items], kind)
            except (MediaError, OSError) as exc:
                raise StatusError.bad_request(f"invalid {kind}: {exc}") from exc
        return media

    def _marked(self, m: Message, n_media: int) -> Message:
        """``m`` with one media marker per image and audio clip before its content (see :mod:`.media`)."""
        if not n_media:
            return m
        assert self.projector is not None  # media were decoded by it
        content = self.projector.marker * n_media + (m.content or "")
        return m.model_copy(update={"content": content, "images": None, "audio": None})

    def _tokenize_media(
        self, text: str, media: Sequence[_core.Media], *, add_special: bool, parse_special: bool
    ) -> media_lib.MediaPrompt:
        """``text`` tokenized, through the projector when it holds media (a 400 when that fails)."""
        if not media:
            tokens = self._vocab.tokenize(text, add_special=add_special, parse_special=parse_special)
            return media_lib.MediaPrompt(tokens, {}, 0, 0)
        assert self.projector is not None
        try:
            return media_lib.tokenize(self.projector, text, media, add_special=add_special, parse_special=parse_special)
        except (MediaError, ValueError) as exc:
            kinds = {m.kind for m in media}
            raise StatusError.bad_request(f"invalid {kinds.pop() if len(kinds) == 1 else 'media'}: {exc}") from exc

    def completion(
        self,
        text: str,
        *,
        raw: bool,
        template: str | None,
        system: str | None,
        history: Sequence[Message],
        context: Sequence[int] | None,
        schema: dict | None,
        think: ThinkValue | None,
        images: Sequence[Image] | None = None,
        audio: Sequence[Audio] | None = None,
    ) -> Prompt:
        """The prompt of a completion: ``text`` as a user turn of the template (or as it is, when ``raw``).

        ``template`` replaces the model's for this prompt; ``context`` (the
        tokens of an earlier completion) goes first, and then the template
        adds no special tokens at the start.

        Raises:
            StatusError: 400 for a schema ``common`` cannot compile, a
                conversation the template rejects, or media the model does not take.
        """
        parser: ReplyParser | None = None
        media = self._decoded(images, audio)
        if raw:
            grammar = schema_grammar(schema) if schema is not None else {}
            if media:
                assert self.projector is not None
                text = self.projector.marker * len(media) + text
        else:
            user = self._marked(Message(role="user", content=text), len(media))
            messages = oai_messages([*history, user], system)
            rendered: Rendered = render_chat(
                self._chat_templates(template), self._vocab, messages, None, None, schema, think
            )
            text, grammar = rendered.prompt, rendered.grammar
            # The output goes through common's parser, as in chat: it separates
            # thinking and unwraps structured output from a code fence.
            parser = OutputParser(rendered.params)
        # With media, the markers are parsed even in a raw prompt (they are the projector's own, random text).
        mp = self._tokenize_media(text, media, add_special=not context, parse_special=not raw)
        tokens, runs = mp.tokens, mp.media
        if context:
            tokens = np.concatenate([np.asarray(context, np.int32), tokens])
            runs = {pos + len(context): c for pos, c in runs.items()}
        return Prompt(tokens, text, grammar, (), parser, runs, mp.image_count, mp.audio_count)

    def fill_in_middle(self, prefix: str, suffix: str, grammar: dict) -> Prompt:
        """The fill-in-the-middle prompt of ``prefix`` and ``suffix`` (see :attr:`supports_insert`)."""
        v = self._vocab
        pre = v.tokenize(prefix, add_special=False)
        suf = v.tokenize(suffix, add_special=False)
        bos = [v.bos] if v.add_bos and v.bos >= 0 else []
        tokens = np.concatenate(
            [
                np.array([*bos, v.fim_pre], np.int32),
                pre,
                np.array([v.fim_suf], np.int32),
                suf,
                np.array([v.fim_mid], np.int32),
            ]
        )
        return Prompt(tokens, v.detokenize(tokens, unparse_special=True), grammar)

    def schema_grammar(self, schema: dict) -> dict:
        """``schema`` compiled to a grammar, for prompts that bypass the template (400 if it does not compile)."""
        return schema_grammar(schema)

    def embedding_inputs(self, texts: list[str], limit: int, truncate: bool) -> tuple[Tokens, npt.NDArray[np.int64]]:
        """``texts`` tokenized in one native call, packed (tokens, offsets), each cut to ``limit`` tokens.

        Raises:
            StatusError: 400 for an input over ``limit`` when not ``truncate``.
        """
        tokens, offsets = self._vocab.tokenize_many(texts, add_special=True)
        lengths = np.diff(offsets)
        over = np.flatnonzero(lengths > limit)
        if over.size:
            if not truncate:
                i = int(over[0])
                raise StatusError.bad_request(
                    f"input {i}: the input length exceeds the context length ({int(lengths[i])} > {limit} tokens)"
                )
            # Keep the first `limit` tokens of each input (position within its input < limit).
            within = np.arange(len(tokens)) - np.repeat(offsets[:-1], lengths)
            tokens = tokens[within < limit]
            offsets = np.concatenate(([0], np.cumsum(np.minimum(lengths, limit))))
        return tokens, offsets

    # -- tokens -----------------------------------------------------------------------
    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = False) -> Tokens:
        return self._vocab.tokenize(text, add_special=add_special, parse_special=parse_special)

    def detokenize(self, tokens: Sequence[int]) -> str:
        """The text of ``tokens``; ValueError for an id outside the vocabulary."""
        return self._vocab.detokenize(tokens)

    def token_pieces(self, tokens: Iterable[int]) -> list[str]:
        """Each token's text (pieces of a multi-byte character with replacement characters); ValueError for a bad id."""
        return [self._vocab.token_to_piece(int(t), special=True).decode("utf-8", "replace") for t in tokens]

    def logprobs(self, items: Iterable[TokenLogprobsLike]) -> list[Logprob]:
        """The engine's log probabilities as the API's objects (see :mod:`.logprobs`)."""
        return to_logprobs(self._vocab, items)
