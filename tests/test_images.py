"""Images in chat and generate, through libmtmd, on the test pair of scripts/make_test_projector.py.

The pair (SmolLM2-135M with SmolVLM's image tokens, a tiny random Idefics3
projector) cannot describe a picture, but every path is real: libmtmd
decodes, tiles and encodes the photo, and its embeddings steer the greedy
output, which is compared with llama.cpp's own llama-mtmd-cli on the same
files, prompt and settings.
"""

from __future__ import annotations

import base64
import re
import struct
import subprocess
import threading
import zlib
from pathlib import Path

import pytest
from conftest import REPO
from near_tie import assert_chat_same_or_near_tie

import llamanative
from llamanative import Client, ResponseError, _core
from llamanative.errors import MediaError, ProjectorLoadError

MTMD = REPO / "vendor" / "llama.cpp" / "tools" / "mtmd"
IMAGE = MTMD / "test-1.jpeg"
N_PREDICT = 12
OPTS = {"temperature": 0, "seed": 0, "num_predict": N_PREDICT, "num_ctx": 1024, "num_thread": 2}
PROMPT = "What is in this image?"


@pytest.fixture(scope="module")
def vclient(vision_pair, tmp_path_factory, smollm2_path):
    model, projector = vision_pair
    root = tmp_path_factory.mktemp("vstore")
    with Client(models_dir=str(root)) as c:
        c.create("vis", from_=str(model), projector=str(projector))
        c.create("text-only", from_=str(smollm2_path))
        assert "vision" in c.show("vis").capabilities
        yield c


def _mtmd_cli(llama_mtmd_cli, vision_pair, prompt: str, images: list[Path], *args: str) -> str:
    """What llama-mtmd-cli generates (greedy, one user turn through the model's chat template)."""
    model, projector = vision_pair
    argv = [str(llama_mtmd_cli), "-m", str(model), "--mmproj", str(projector)]
    argv += ["--image", ",".join(str(img) for img in images)]  # repeated --image keeps only the last
    argv += ["-p", prompt, "-n", str(N_PREDICT), "--temp", "0", "--seed", "0", "-t", "2", "-c", "1024", "--jinja"]
    argv += args
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _chat(c: Client, images, content: str = PROMPT, **kw):
    return c.chat(model="vis", messages=[{"role": "user", "content": content, "images": images}], options=OPTS, **kw)


@pytest.mark.parametrize("flash_attn", ["on", "off"])
@pytest.mark.parametrize("n_images", [1, 2])
def test_greedy_output_equals_llama_mtmd_cli(vision_pair, llama_mtmd_cli, tmp_path, monkeypatch, n_images, flash_attn):
    """Token for token, with flash attention on and off on both sides.

    llama-mtmd-cli's ``-fa`` sets the text context's and the encoder's flash attention, as
    LLAMANATIVE_FLASH_ATTENTION does; with them different the sums differ in their last bits,
    and on a random-weight pair that turns a near-tie within a few tokens. The second image
    is another one (a generated PNG), so that each image's embeddings are checked.
    """
    png = tmp_path / "gradient.png"
    png.write_bytes(_png(64, 48))
    images = [IMAGE, png][:n_images]
    ref = _mtmd_cli(llama_mtmd_cli, vision_pair, PROMPT, images, "-fa", flash_attn)
    monkeypatch.setenv("LLAMANATIVE_FLASH_ATTENTION", flash_attn)
    model, projector = vision_pair
    with Client(models_dir=str(tmp_path / "store")) as c:
        c.create("vis", from_=str(model), projector=str(projector))
        r = _chat(c, [str(p) for p in images], logprobs=True)
    assert r.eval_count == N_PREDICT
    # The pieces as the tool prints them: control tokens (Idefics3's <row_i_col_j>) are shown
    # there and left out of message.content, as llama-server and Ollama leave them out.
    assert r.logprobs is not None
    generated = "".join(lp.token for lp in r.logprobs)
    assert generated.strip() == ref.strip(), (generated, ref)


def test_image_token_count_equals_libmtmd(vclient, vision_pair):
    model, projector = vision_pair
    rendered = _chat(vclient, [str(IMAGE)], _debug_render_only=True).debug_info.rendered_template
    m = _core.Model(str(model))
    with _core.Projector(str(projector), m, n_threads=2) as p:
        marker = re.search(r"<__media_[0-9a-f]{16}__>", rendered)
        assert marker is not None, rendered
        chunks = p.tokenize(rendered.replace(marker[0], p.marker), [p.load_media(IMAGE.read_bytes())])
        n_image = sum(c.n_tokens for c in chunks if c.kind == "image")
        n_all = sum(c.n_tokens for c in chunks)
    m.close()
    assert n_image == 80  # 5 tiles (2x2 and the overview) of 16 tokens: test_test_projector checks this on the CLI
    vclient.chat(model="vis", messages=[], keep_alive=0)  # a fresh load: nothing cached
    with_image = _chat(vclient, [str(IMAGE)])
    assert with_image.prompt_eval_count == n_all


def test_bytes_base64_and_path_give_the_same_output(vclient):
    data = IMAGE.read_bytes()
    outs = []
    for img in (data, base64.b64encode(data).decode(), str(IMAGE), IMAGE):
        vclient.chat(model="vis", messages=[], keep_alive=0)  # unload: each one is evaluated afresh
        outs.append(_chat(vclient, [img]).message.content)
    assert len(set(outs)) == 1, outs


def test_a_second_turn_about_the_same_image_does_not_encode_it_again(vclient):
    vclient.chat(model="vis", messages=[], keep_alive=0)
    first = _chat(vclient, [str(IMAGE)])
    follow = [
        {"role": "user", "content": PROMPT, "images": [str(IMAGE)]},
        {"role": "assistant", "content": first.message.content},
        {"role": "user", "content": "And the colours?"},
    ]
    warm = vclient.chat(model="vis", messages=follow, options=OPTS)
    vclient.chat(model="vis", messages=[], keep_alive=0)
    fresh = vclient.chat(model="vis", messages=follow, options=OPTS)
    assert warm.message.content == fresh.message.content
    assert warm.prompt_eval_count < fresh.prompt_eval_count - 80, (warm.prompt_eval_count, fresh.prompt_eval_count)


def test_a_conversation_parked_in_ram_keeps_its_image(vclient):
    """Other conversations take every slot; the image's cells come back from RAM, positions and all."""
    vclient.chat(model="vis", messages=[], keep_alive=0)
    first = _chat(vclient, [str(IMAGE)])
    follow = [
        {"role": "user", "content": PROMPT, "images": [str(IMAGE)]},
        {"role": "assistant", "content": first.message.content},
        {"role": "user", "content": "And the colours?"},
    ]
    story = "Once upon a time, in a small village by the sea, there lived an old fisherman. " * 6
    for i in range(5):  # more conversations than the runner has slots (4): the image's slot is parked
        vclient.chat(model="vis", messages=[{"role": "user", "content": f"Story {i}. {story}"}], options=OPTS)
    parked = vclient.chat(model="vis", messages=follow, options=OPTS)
    vclient.chat(model="vis", messages=[], keep_alive=0)
    fresh = vclient.chat(model="vis", messages=follow, options=OPTS)
    assert parked.prompt_eval_count < fresh.prompt_eval_count - 80, (parked.prompt_eval_count, fresh.prompt_eval_count)
    assert parked.message.content == fresh.message.content


def test_props_reports_the_loaded_projectors_modalities(vclient):
    assert vclient.props("vis").modalities.model_dump() == {"vision": True, "audio": False}
    assert vclient.props("text-only").modalities.model_dump() == {"vision": False, "audio": False}


def test_generate_with_images_and_debug_render(vclient):
    r = vclient.generate(model="vis", prompt=PROMPT, images=[str(IMAGE)], options=OPTS)
    assert r.response
    d = vclient.generate(model="vis", prompt=PROMPT, images=[str(IMAGE), str(IMAGE)], _debug_render_only=True)
    assert d.debug_info.image_count == 2
    c = vclient.chat(
        model="vis",
        messages=[{"role": "user", "content": PROMPT, "images": [str(IMAGE)]}],
        _debug_render_only=True,
    )
    assert c.debug_info.image_count == 1
    assert PROMPT in c.debug_info.rendered_template


def test_streaming_with_an_image(vclient):
    parts = list(_chat(vclient, [str(IMAGE)], stream=True))
    assert parts[-1].done
    assert "".join(p.message.content for p in parts) == _chat(vclient, [str(IMAGE)]).message.content


def test_concurrent_chats_with_and_without_images_give_their_solo_outputs(vclient):
    asks = [
        ([str(IMAGE)], PROMPT),
        (None, "Name three colours."),
        ([str(IMAGE)], "Describe it in one word."),
        (None, "Count to five."),
    ]
    lp = {"logprobs": True, "top_logprobs": 5}
    alone = [_chat(vclient, imgs, text, **lp) for imgs, text in asks]
    got: list = [None] * len(asks)

    def run(i):
        imgs, text = asks[i]
        got[i] = _chat(vclient, imgs, text, **lp)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(asks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for i, (solo, batched) in enumerate(zip(alone, got)):
        assert batched is not None, f"request {i} did not finish"
        assert_chat_same_or_near_tie(solo, batched, f"request {i}")


def test_a_text_stream_keeps_going_while_another_request_encodes_an_image(vclient):
    vclient.chat(model="vis", messages=[], keep_alive=0)
    stream = vclient.chat(
        model="vis",
        messages=[{"role": "user", "content": "Count from one to fifty."}],
        options={**OPTS, "num_predict": 200},
        stream=True,
    )
    first = next(stream)
    assert not first.done
    done = threading.Event()
    result = {}

    def image_request():
        result["r"] = _chat(vclient, [str(IMAGE)] * 2)
        done.set()

    t = threading.Thread(target=image_request)
    t.start()
    during = 0
    for part in stream:
        if not done.is_set():
            during += 1
        if part.done:
            break
    t.join(120)
    assert result["r"].message.content
    assert during > 0  # the text stream produced tokens while the image request ran


# -- bad input: a typed 400 (or a typed core error), the process unharmed ---------------------------------


def _png(width: int, height: int, body: bytes | None = None) -> bytes:
    """An RGB PNG of ``width`` x ``height`` pixels (gray), or one whose header claims that size over ``body``."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    if body is None:
        body = (b"\0" + b"\x80" * (3 * width)) * height
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(body)) + chunk(b"IEND", b"")


def test_a_generated_png_is_an_image(vclient):
    assert _chat(vclient, [_png(96, 64)]).message.content


@pytest.mark.parametrize(
    ("image", "message"),
    [
        # (stb_image decodes a truncated JPEG as far as its data goes, as most decoders do; a PNG it refuses.)
        (_png(256, 256)[:400], "corrupt or truncated"),
        (b"\0" * 64, "not an image libmtmd decodes"),
        ((REPO / "README.md").read_bytes(), "not an image libmtmd decodes"),
        (_png(15_000, 15_000, b"\0" * 64), "more than the limit"),
        (b"RIFF\x10\0\0\0WEBPVP8 " + b"\0" * 32, "WebP"),
    ],
    ids=["truncated-png", "zeros", "text-file", "decompression-bomb", "webp"],
)
def test_bad_images_are_400s(vclient, image, message):
    with pytest.raises(ResponseError) as exc:
        _chat(vclient, [image])
    assert exc.value.status_code == 400
    assert message in str(exc.value)
    assert _chat(vclient, [str(IMAGE)]).message.content  # the model still serves


def test_an_empty_image_is_refused_at_the_request(vclient):
    with pytest.raises((ResponseError, ValueError)):
        _chat(vclient, [b""])


def test_an_image_for_a_model_without_projector_is_a_400(vclient):
    with pytest.raises(ResponseError) as exc:
        vclient.chat(
            model="text-only", messages=[{"role": "user", "content": "hi", "images": [str(IMAGE)]}], options=OPTS
        )
    assert exc.value.status_code == 400
    assert "does not support vision" in str(exc.value)


def test_more_images_than_the_context_holds_is_a_400(vclient):
    with pytest.raises(ResponseError) as exc:
        vclient.chat(
            model="vis",
            messages=[{"role": "user", "content": PROMPT, "images": [str(IMAGE)] * 4}],
            options={**OPTS, "num_ctx": 256},
        )
    assert exc.value.status_code == 400
    assert "context length" in str(exc.value)


def test_a_stored_projector_of_another_model_is_a_400(vclient, vision_pair, gemma3_path):
    _, projector = vision_pair
    vclient.create("mismatched", from_=str(gemma3_path), projector=str(projector))
    with pytest.raises(ResponseError) as exc:
        vclient.generate("mismatched", PROMPT, images=[str(IMAGE)], options=OPTS)
    assert exc.value.status_code == 400
    assert "cannot use its projector" in str(exc.value) and "another text model" in str(exc.value)
    assert _chat(vclient, [str(IMAGE)]).message.content  # the process and the other models are unharmed


def test_projector_of_another_model_is_refused(vision_pair, gemma3_path):
    _, projector = vision_pair
    m = _core.Model(str(gemma3_path))
    with pytest.raises(ProjectorLoadError, match="another text model"):
        _core.Projector(str(projector), m, n_threads=2)
    m.close()  # nothing holds the model


def test_a_model_gguf_as_projector_and_a_truncated_projector_are_refused(vision_pair, tmp_path):
    model, projector = vision_pair
    m = _core.Model(str(model))
    with pytest.raises(ProjectorLoadError, match="not a projector"):
        _core.Projector(str(model), m)
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(projector.read_bytes()[: projector.stat().st_size // 2])
    with pytest.raises(ProjectorLoadError, match="truncated"):
        _core.Projector(str(cut), m)
    with pytest.raises(FileNotFoundError):
        _core.Projector(str(tmp_path / "missing.gguf"), m)
    m.close()


def test_projector_lifetime_and_media_objects(vision_pair):
    model, projector = vision_pair
    m = _core.Model(str(model))
    p = _core.Projector(str(projector), m, n_threads=2, max_image_pixels=1000)
    assert p.vision and not p.audio
    assert re.fullmatch(r"<__media_[0-9a-f]{16}__>", p.marker)
    with pytest.raises(RuntimeError, match="context"):
        m.close()  # the projector still points into the model
    with pytest.raises(MediaError, match="more than the limit of 1000 pixels"):
        p.load_media(IMAGE.read_bytes())
    p.close()
    p.close()
    m.close()
    with pytest.raises(ValueError, match="closed"):
        p.load_media(IMAGE.read_bytes())


def test_marker_count_must_match_media(vision_pair):
    model, projector = vision_pair
    m = _core.Model(str(model))
    with _core.Projector(str(projector), m, n_threads=2) as p:
        media = p.load_media(IMAGE.read_bytes())
        assert (media.kind, media.width, media.height) == ("image", 640, 488)
        assert len(media.id) == 64
        with pytest.raises(ValueError, match="1 media marker"):
            p.tokenize(p.marker, [media, media])
        # The default marker in user text opens no media slot: the random marker is the projector's own.
        chunks = p.tokenize("<__media__> text", [])
        assert [c.kind for c in chunks] == ["text"]
    m.close()


def test_package_exports_the_new_errors():
    assert issubclass(llamanative.errors.MediaError, ValueError)
    assert issubclass(llamanative.errors.ProjectorLoadError, ValueError)
