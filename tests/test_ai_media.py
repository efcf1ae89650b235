"""Media parts in the ``ai`` layer, on the vision test pair (scripts/make_test_projector.py) stored through a Client.

A media part reaches a local model as the bytes of its message's ``images``:
``data:`` URLs, ``file:`` URLs and paths are read by the model, http(s) URLs
only by the ``download_request_media`` middleware (a loopback HTTP server
here). The tiny random pair cannot describe the photo, but its embeddings
steer the greedy output, so "the same output as the Client given the same
bytes" checks that the image arrived whole.
"""

from __future__ import annotations

import base64
import http.server
import json
import threading
from pathlib import Path

import jsonschema
import pytest
from conftest import REPO

from llamanative import Client
from llamanative.ai import (
    Genkit,
    InvalidArgumentError,
    Media,
    MediaTooLarge,
    Part,
    UnsupportedByModel,
    UnsupportedMedia,
    download_request_media,
    is_audio_content_type,
    is_image_content_type,
    is_video_content_type,
    new_media_part,
    new_tool,
)
from llamanative.ai.media import decode_data_url, read_media

MTMD = REPO / "vendor" / "llama.cpp" / "tools" / "mtmd"
IMAGE = MTMD / "test-1.jpeg"
AUDIO = MTMD / "test-2.mp3"
N_PREDICT = 12
OPTS = {"temperature": 0, "seed": 0, "num_predict": N_PREDICT, "num_ctx": 1024, "num_thread": 2}
CONFIG = {"temperature": 0, "seed": 0, "maxOutputTokens": N_PREDICT, "num_ctx": 1024, "num_thread": 2}
PROMPT = "What is in this image?"


@pytest.fixture(scope="module")
def vclient(vision_pair, smollm2_path, qwen3_style_path, tmp_path_factory):
    """A store with ``vis`` (the pair), ``vis-think`` (the pair's model with a template that thinks) and
    ``text-only`` (SmolLM2, no projector)."""
    from gguf_edit import with_chat_template

    model, projector = vision_pair
    root = tmp_path_factory.mktemp("ai-media")
    template = (Path(__file__).parent / "data" / "qwen3_style.jinja").read_text()
    thinking = with_chat_template(model, root / "vis-qwen3-style.gguf", template)
    with Client(models_dir=str(root / "store")) as c:
        c.create("vis", from_=str(model), projector=str(projector))
        c.create("vis-think", from_=str(thinking), projector=str(projector))
        c.create("text-only", from_=str(smollm2_path))
        yield c


@pytest.fixture(scope="module")
def ai(vclient):
    return Genkit(model="llamanative/vis", client=vclient)


def _fresh(client: Client, model: str = "vis") -> None:
    """Unload the model, so that the next request evaluates its prompt afresh (no prefix cache)."""
    client.chat(model=model, messages=[], keep_alive=0)


def _client_chat(client: Client, images, model: str = "vis", num_predict: int = N_PREDICT, **kw):
    _fresh(client, model)
    messages = [{"role": "user", "content": PROMPT, "images": images}]
    return client.chat(model=model, messages=messages, options={**OPTS, "num_predict": num_predict}, **kw)


def _generate(ai: Genkit, media: Part, **kw):
    _fresh(ai.client, kw.get("model", "llamanative/vis").removeprefix("llamanative/"))
    kw.setdefault("config", CONFIG)
    return ai.generate(prompt=[media, PROMPT], **kw)


def _data_url(data: bytes, content_type: str = "image/jpeg") -> str:
    return f"data:{content_type};base64,{base64.b64encode(data).decode()}"


@pytest.fixture(scope="module")
def reference(vclient):
    """What the Client answers about the photo given its bytes (and, to compare, given no image)."""
    with_image = _client_chat(vclient, [IMAGE.read_bytes()])
    _fresh(vclient)
    without = vclient.chat(model="vis", messages=[{"role": "user", "content": PROMPT}], options=OPTS)
    assert with_image.message.content and with_image.message.content != without.message.content
    return with_image


# -- capabilities --------------------------------------------------------------------------------------
def test_media_support_comes_from_the_projector(ai):
    assert ai.lookup_model("llamanative/vis").info.supports.media is True
    assert ai.lookup_model("llamanative/vis-think").info.supports.media is True
    assert not ai.lookup_model("llamanative/text-only").info.supports.media
    with pytest.raises(UnsupportedByModel, match="does not support media"):
        _generate(ai, new_media_part("image/jpeg", str(IMAGE)), model="llamanative/text-only")


# -- data: URLs and files: the same output as the Client given the bytes ----------------------------------
@pytest.mark.parametrize(
    "media",
    [
        Media(url=_data_url(IMAGE.read_bytes()), content_type="image/jpeg"),
        Media(url=_data_url(IMAGE.read_bytes())),  # the type from the data: URL
        Media(url=str(IMAGE)),  # a path; the type guessed from its name
        Media(url=IMAGE.as_uri(), content_type="image/jpeg"),  # a file: URL
    ],
    ids=["data-url", "data-url-without-content-type", "path", "file-url"],
)
def test_data_urls_and_files_give_the_clients_output(ai, reference, media):
    resp = _generate(ai, Part(media=media))
    assert resp.text() == reference.message.content
    assert resp.usage.input_tokens == reference.prompt_eval_count
    assert resp.usage.output_tokens == reference.eval_count
    assert resp.usage.input_images == 1


def test_a_relative_path_is_read_from_the_working_directory(ai, reference, monkeypatch):
    monkeypatch.chdir(IMAGE.parent)
    assert _generate(ai, new_media_part(None, IMAGE.name)).text() == reference.message.content


# -- the download middleware on a loopback server ------------------------------------------------------------
@pytest.fixture(scope="module")
def server():
    """``(base URL, paths requested)``: ``/photo.jpg`` (JPEG with its Content-Type), ``/photo`` (no
    Content-Length: the body ends with the connection), ``/missing`` (404)."""
    photo = IMAGE.read_bytes()
    requested: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requested.append(self.path)
            if self.path == "/photo.jpg":
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg; charset=binary")
                self.send_header("Content-Length", str(len(photo)))
                self.end_headers()
                self.wfile.write(photo)
            elif self.path == "/photo":
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(photo)
                self.close_connection = True
            else:
                self.send_response(404)
                self.send_header("Content-Length", "9")
                self.end_headers()
                self.wfile.write(b"not found")

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_port}", requested
    srv.shutdown()
    srv.server_close()
    thread.join(10)


def _seen():
    """A middleware that records the requests the model gets (listed after the download, it sees its result)."""
    requests = []

    def middleware(next_fn):
        def run(request, on_chunk):
            requests.append(request)
            return next_fn(request, on_chunk)

        return run

    middleware.requests = requests
    return middleware


def test_a_downloaded_image_gives_the_clients_output(ai, reference, server):
    base, _ = server
    seen = _seen()
    part = new_media_part(None, f"{base}/photo.jpg")
    resp = _generate(ai, part, use=[download_request_media(max_bytes=1 << 20), seen])
    assert resp.text() == reference.message.content
    media = seen.requests[0].messages[0].content[0].media
    # The type from the response's header, without its parameters; the caller's part is unchanged.
    assert media.content_type == "image/jpeg"
    assert media.url == _data_url(IMAGE.read_bytes())
    assert part.media.url == f"{base}/photo.jpg"
    assert resp.request.messages[0].content[0].media.url == f"{base}/photo.jpg"


def test_the_parts_own_content_type_wins_over_the_header(ai, server):
    base, _ = server
    seen = _seen()
    _generate(ai, new_media_part("image/x-custom", f"{base}/photo.jpg"), use=[download_request_media(), seen])
    media = seen.requests[0].messages[0].content[0].media
    assert media.content_type == "image/x-custom" and media.url.startswith("data:image/x-custom;base64,")


@pytest.mark.parametrize("path", ["/photo.jpg", "/photo"], ids=["content-length", "no-content-length"])
def test_a_download_over_the_size_limit_is_an_error(ai, server, path):
    base, _ = server
    with pytest.raises(MediaTooLarge, match="larger than the limit of 1000 bytes"):
        _generate(ai, new_media_part(None, base + path), use=[download_request_media(max_bytes=1000)])
    assert issubclass(MediaTooLarge, InvalidArgumentError)
    with pytest.raises(InvalidArgumentError, match="max_bytes must be positive"):
        download_request_media(max_bytes=0)


def test_a_filtered_out_url_is_left_as_it_is(ai, server):
    base, requested = server
    seen = _seen()
    url = f"{base}/photo.jpg?skip"
    before = len(requested)
    mw = download_request_media(filter=lambda part: not part.media.url.endswith("?skip"))
    with pytest.raises(UnsupportedMedia, match=r"add download_request_media\(\)"):
        _generate(ai, new_media_part("image/jpeg", url), use=[mw, seen])
    assert seen.requests[0].messages[0].content[0].media.url == url
    assert len(requested) == before  # not fetched


def test_an_http_url_without_the_middleware_is_a_clear_error(ai, server):
    base, requested = server
    before = len(requested)
    with pytest.raises(UnsupportedMedia, match=r"not downloaded by local models: add download_request_media\(\)"):
        _generate(ai, new_media_part("image/jpeg", f"{base}/photo.jpg"))
    assert len(requested) == before


def test_http_errors_of_a_download(ai, server):
    base, _ = server
    with pytest.raises(InvalidArgumentError, match="404 not found"):
        _generate(ai, new_media_part(None, f"{base}/missing"), use=[download_request_media()])


# -- streaming, tools, format and think with an image --------------------------------------------------------
def test_streaming_with_an_image(ai, reference):
    _fresh(ai.client)
    stream = ai.generate_stream(prompt=[new_media_part("image/jpeg", str(IMAGE)), PROMPT], config=CONFIG)
    values = list(stream)
    assert values[-1].done and not any(v.done for v in values[:-1])
    text = "".join(v.chunk.text() for v in values[:-1])
    assert text == values[-1].response.text() == reference.message.content


def weather(city: str, days: int) -> str:
    """The weather in a city."""
    return f"sunny in {city} for {days} days"


def _tool_choice_after_tools(choice: str):
    """A middleware that sets the tool choice once a tool answered (a required choice would call tools again)."""

    def middleware(next_fn):
        def run(request, on_chunk):
            if any(m.role == "tool" for m in request.messages):
                request = request.model_copy(update={"tool_choice": choice})
            return next_fn(request, on_chunk)

        return run

    return middleware


def test_tools_with_an_image(ai, vclient):
    """The tool call the model makes about the image is the one the Client makes, and the loop runs it."""
    tool = new_tool("weather", weather)
    defn = tool.definition()
    client_tool = {
        "type": "function",
        "function": {"name": defn.name, "description": defn.description, "parameters": defn.input_schema},
    }
    direct = _client_chat(vclient, [IMAGE.read_bytes()], num_predict=64, tools=[client_tool], tool_choice="required")
    assert direct.message.tool_calls
    media = new_media_part("image/jpeg", str(IMAGE))
    cfg = {**CONFIG, "maxOutputTokens": 64}
    resp = _generate(ai, media, tools=[tool], tool_choice="required", return_tool_requests=True, config=cfg)
    assert [(c.tool_request.name, c.tool_request.input) for c in resp.tool_requests()] == [
        (c.function.name, c.function.arguments) for c in direct.message.tool_calls
    ]
    # The whole loop: the tool runs and its response goes back, the image still in the history.
    looped = _generate(
        ai, media, tools=[tool], tool_choice="required", use=[_tool_choice_after_tools("none")], config=cfg
    )
    history = looped.history()
    assert [m.role for m in history] == ["user", "model", "tool", "model"]
    assert history[2].content[0].tool_response.output.startswith("sunny in ")
    assert history[0].content[0].media.url == str(IMAGE)


def test_constrained_output_with_an_image(ai, vclient):
    schema = {
        "type": "object",
        "properties": {"object": {"type": "string", "maxLength": 20}, "count": {"type": "integer"}},
        "required": ["object", "count"],
    }
    cfg = {**CONFIG, "maxOutputTokens": 64}
    _fresh(vclient)
    value, resp = ai.generate_data(schema, prompt=[new_media_part("image/jpeg", str(IMAGE)), PROMPT], config=cfg)
    jsonschema.validate(value, schema)
    direct = _client_chat(vclient, [IMAGE.read_bytes()], num_predict=64, format=schema)
    assert value == json.loads(direct.message.content)


def test_think_with_an_image(ai, vclient):
    direct = _client_chat(vclient, [IMAGE.read_bytes()], model="vis-think", think=True)
    resp = _generate(
        ai, new_media_part("image/jpeg", str(IMAGE)), model="llamanative/vis-think", config={**CONFIG, "think": True}
    )
    assert resp.reasoning() and resp.reasoning() == direct.message.thinking
    assert resp.text() == direct.message.content
    # A model that does not think refuses think=True with an image as without one.
    for prompt in ([new_media_part("image/jpeg", str(IMAGE)), PROMPT], [PROMPT]):
        with pytest.raises(InvalidArgumentError, match="does not support thinking"):
            ai.generate(prompt=prompt, config={**CONFIG, "think": True})


# -- audio ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def aclient(audio_pair, tmp_path_factory):
    model, projector = audio_pair
    with Client(models_dir=str(tmp_path_factory.mktemp("ai-audio"))) as c:
        c.create("aud", from_=str(model), projector=str(projector))
        yield c


def test_an_audio_part_reaches_a_model_with_an_audio_encoder(aclient):
    data = AUDIO.read_bytes()
    _fresh(aclient, "aud")
    messages = [{"role": "user", "content": PROMPT, "audio": [data]}]
    direct = aclient.chat(model="aud", messages=messages, options=OPTS)
    ai = Genkit(model="llamanative/aud", client=aclient)
    assert ai.lookup_model("llamanative/aud").info.supports.media is True
    for media in (Media(url=_data_url(data, "audio/mpeg")), Media(url=str(AUDIO))):
        _fresh(aclient, "aud")
        resp = ai.generate(prompt=[Part(media=media), PROMPT], config=CONFIG)
        assert resp.text() == direct.message.content
        assert resp.usage is not None and resp.usage.input_audio_files == 1 and not resp.usage.input_images
        assert resp.usage.input_tokens == direct.prompt_eval_count


# -- what local models refuse -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("media", "error", "match"),
    [
        (Media(url=_data_url(AUDIO.read_bytes(), "audio/mpeg")), InvalidArgumentError, "does not support audio"),
        (Media(url=str(AUDIO)), InvalidArgumentError, "does not support audio"),  # audio/mpeg from the name
        (Media(url="data:video/mp4;base64,AAAA"), UnsupportedMedia, "video input"),
        (Media(url="data:text/plain,hello"), UnsupportedMedia, "not 'text/plain'"),
        (Media(url="gs://bucket/photo.jpg", content_type="image/jpeg"), UnsupportedMedia, "cannot read gs:"),
        (Media(url="/no/such/photo.jpg"), UnsupportedMedia, "does not exist"),
        (Media(url="file://elsewhere/photo.jpg"), UnsupportedMedia, "another host"),
        (Media(url="data:image/png;base64,not base64!"), InvalidArgumentError, "malformed data: URL"),
        (Media(url="data:image/png;base64"), InvalidArgumentError, "no comma"),
    ],
    ids=[
        "audio-to-a-vision-projector",
        "audio-file-to-a-vision-projector",
        "video",
        "text",
        "gs-url",
        "missing-file",
        "remote-file-url",
        "bad-base64",
        "no-comma",
    ],
)
def test_media_a_local_model_refuses(ai, media, error, match):
    with pytest.raises(error, match=match):
        ai.generate(prompt=[Part(media=media), PROMPT], config=CONFIG)


def test_content_type_helpers_follow_go():
    for ct, kind in [
        ("image/png", "image"),
        ("image/webp", "image"),
        ("data:image/png;base64,...", "image"),
        ("IMAGE/JPEG", "image"),
        ("video/mp4", "video"),
        ("data:video/mp4;base64,...", "video"),
        ("audio/mpeg", "audio"),
        ("data:audio/mp3;base64,...", "audio"),
        ("text/plain", None),
        ("application/json", None),
        ("", None),
        (None, None),
    ]:
        got = [is_image_content_type(ct), is_video_content_type(ct), is_audio_content_type(ct)]
        assert got == [kind == "image", kind == "video", kind == "audio"], ct
    assert Part(media=Media(url=str(IMAGE), content_type="image/jpeg")).is_image()
    assert Part(media=Media(url="data:audio/mpeg;base64,AA")).is_audio()
    assert not Part(text="image/png").is_image()


def test_data_url_decoding():
    assert decode_data_url("data:,a%2Cb") == ("", b"a,b")
    assert decode_data_url("data:image/png;name=x.png;base64,iVBORw==") == ("image/png", b"\x89PNG")
    got = read_media(Media(url=_data_url(b"abc", "image/png"), content_type="image/x-mine"))
    assert (got.content_type, got.data) == ("image/x-mine", b"abc")
