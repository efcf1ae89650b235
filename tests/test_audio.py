"""Audio in chat and generate, through libmtmd, on the test pairs of scripts/make_test_projector.py.

The audio pair (SmolLM2-135M with SmolVLM's image tokens, a tiny random
Ultravox projector) cannot tell what it hears, but every path is real:
libmtmd's helper decodes and resamples the clip (miniaudio), makes its mel
spectrogram, and the Whisper encoder's embeddings steer the greedy output,
which is compared with llama.cpp's own llama-mtmd-cli on the same files,
prompt and settings. The omni pair's projector has both encoders, for a
message with an image and a clip.
"""

from __future__ import annotations

import base64
import io
import re
import struct
import subprocess
import threading
import wave
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from near_tie import assert_chat_same_or_near_tie

from llamanative import Audio, Client, ResponseError, _core
from llamanative.errors import MediaError

MTMD = REPO / "vendor" / "llama.cpp" / "tools" / "mtmd"
CLIP = MTMD / "test-2.mp3"  # 17.4 s of MP3 (44.1 kHz stereo): one 30-second window
IMAGE = MTMD / "test-1.jpeg"
N_PREDICT = 12
OPTS = {"temperature": 0, "seed": 0, "num_predict": N_PREDICT, "num_ctx": 1024, "num_thread": 2}
PROMPT = "What is in this audio?"
TOKENS_PER_WINDOW = 150  # 3000 mel frames (30 s) / 2 (the encoder's stride-2 convolution) / 10 (stacking)


@pytest.fixture(scope="module")
def aclient(audio_pair, vision_pair, omni_pair, tmp_path_factory, smollm2_path):
    root = tmp_path_factory.mktemp("astore")
    with Client(models_dir=str(root)) as c:
        c.create("aud", from_=str(audio_pair[0]), projector=str(audio_pair[1]))
        c.create("vis", from_=str(vision_pair[0]), projector=str(vision_pair[1]))
        c.create("omni", from_=str(omni_pair[0]), projector=str(omni_pair[1]))
        c.create("text-only", from_=str(smollm2_path))
        yield c


def _chat(c: Client, audio, content: str = PROMPT, model: str = "aud", **kw):
    return c.chat(model=model, messages=[{"role": "user", "content": content, "audio": audio}], options=OPTS, **kw)


def _mtmd_cli(llama_mtmd_cli, pair, prompt: str, media: list[tuple[str, Path]], *args: str) -> tuple[str, str]:
    """(stdout, stderr) of llama-mtmd-cli: greedy, one user turn through the model's chat template;
    ``media`` as ``("--image" | "--audio", path)`` in command-line order (the order of its markers);
    ``args``: more of the tool's arguments."""
    model, projector = pair
    argv = [str(llama_mtmd_cli), "-m", str(model), "--mmproj", str(projector)]
    for flag, path in media:
        argv += [flag, str(path)]
    argv += ["-p", prompt, "-n", str(N_PREDICT), "--temp", "0", "--seed", "0", "-t", "2", "-c", "1024", "--jinja"]
    argv += ["-lv", "4", *args]  # -lv 4: the perf summary (prompt tokens) on stderr
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, proc.stderr


# -- synthetic clips --------------------------------------------------------------------------------------


def _wav(seconds: float, rate: int = 16000, channels: int = 1) -> bytes:
    """A 16-bit PCM WAV of a 440 Hz tone."""
    n = int(seconds * rate)
    tone = (8000 * np.sin(2 * np.pi * 440 * np.arange(n) / rate)).astype("<i2")
    b = io.BytesIO()
    with wave.open(b, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.repeat(tone, channels).tobytes())
    return b.getvalue()


def _crc(data: bytes, poly: int, bits: int) -> int:
    top, mask, crc = 1 << (bits - 1), (1 << bits) - 1, 0
    for byte in data:
        crc ^= byte << (bits - 8)
        for _ in range(8):
            crc = ((crc << 1) ^ poly) & mask if crc & top else (crc << 1) & mask
    return crc


def _flac(seconds: float, rate: int = 16000, declared: int | None = None) -> bytes:
    """A mono 16-bit FLAC of a 440 Hz tone in verbatim subframes (no encoder needed); ``declared``: the
    number of samples its STREAMINFO header claims (default: the real number)."""
    n = int(seconds * rate)
    samples = (8000 * np.sin(2 * np.pi * 440 * np.arange(n) / rate)).astype(">i2")
    block = 4096
    total = n if declared is None else declared
    info = struct.pack(">HH", 16, block) + bytes(6)  # block sizes; frame sizes unknown
    info += ((rate << 44) | (0 << 41) | (15 << 36) | total).to_bytes(8, "big") + bytes(16)  # no MD5
    out = b"fLaC" + b"\x80" + len(info).to_bytes(3, "big") + info  # the last metadata block: STREAMINFO
    for i, start in enumerate(range(0, n, block)):
        chunk = samples[start : start + block]
        # sync, fixed blocking; block size in 16 bits after the header, rate from STREAMINFO; mono, 16 bits
        head = bytes([0xFF, 0xF8, 0x70, 0x08]) + bytes([i]) + struct.pack(">H", len(chunk) - 1)
        frame = head + bytes([_crc(head, 0x07, 8)]) + b"\x02" + chunk.tobytes()  # \x02: a verbatim subframe
        out += frame + struct.pack(">H", _crc(frame, 0x8005, 16))
    return out


# -- the reference ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("flash_attn", ["on", "off"])
def test_greedy_output_equals_llama_mtmd_cli(audio_pair, llama_mtmd_cli, tmp_path, monkeypatch, flash_attn):
    """Token for token, with flash attention on and off on both sides (see test_images.py's parity test:
    ``-fa`` sets the text context's and the encoder's, as LLAMANATIVE_FLASH_ATTENTION does, and the tool
    prints the control tokens that message.content leaves out)."""
    ref, _ = _mtmd_cli(llama_mtmd_cli, audio_pair, PROMPT, [("--audio", CLIP)], "-fa", flash_attn)
    monkeypatch.setenv("LLAMANATIVE_FLASH_ATTENTION", flash_attn)
    model, projector = audio_pair
    with Client(models_dir=str(tmp_path / "store")) as c:
        c.create("aud", from_=str(model), projector=str(projector))
        r = _chat(c, [str(CLIP)], logprobs=True)
    assert r.eval_count == N_PREDICT
    assert r.logprobs is not None
    generated = "".join(lp.token for lp in r.logprobs)
    assert generated.strip() == ref.strip(), (generated, ref)


def test_prompt_token_count_equals_llama_mtmd_cli(aclient, audio_pair, llama_mtmd_cli):
    _, log = _mtmd_cli(llama_mtmd_cli, audio_pair, PROMPT, [("--audio", CLIP)])
    m = re.search(r"prompt eval time =.*?/\s+(\d+) tokens", log)
    assert m is not None, log[-3000:]
    aclient.chat(model="aud", messages=[], keep_alive=0)  # a fresh load: nothing cached
    assert _chat(aclient, [str(CLIP)]).prompt_eval_count == int(m[1])


def test_audio_token_count_equals_libmtmd(aclient, audio_pair):
    model, projector = audio_pair
    rendered = _chat(aclient, [str(CLIP)], _debug_render_only=True).debug_info.rendered_template
    m = _core.Model(str(model))
    with _core.Projector(str(projector), m, n_threads=2) as p:
        marker = re.search(r"<__media_[0-9a-f]{16}__>", rendered)
        assert marker is not None, rendered
        clip = p.load_media(CLIP.read_bytes())
        assert (clip.kind, clip.is_audio, clip.sample_rate, clip.height) == ("audio", True, 16000, 1)
        assert 17.0 < clip.duration < 18.0 and clip.width == round(clip.duration * 16000)
        chunks = p.tokenize(rendered.replace(marker[0], p.marker), [clip])
        assert [c.n_tokens for c in chunks if c.kind == "audio"] == [TOKENS_PER_WINDOW]
        n_all = sum(c.n_tokens for c in chunks)
    m.close()
    aclient.chat(model="aud", messages=[], keep_alive=0)
    assert _chat(aclient, [str(CLIP)]).prompt_eval_count == n_all


def test_a_clip_over_30_seconds_is_several_windows(aclient):
    # libmtmd pads a clip with 30 s of silence and cuts it into whole 30-second windows: 35 s -> 2 windows.
    one = _chat(aclient, [_wav(5)], _debug_render_only=True)
    r_one = _chat(aclient, [_wav(5)])
    r_two = _chat(aclient, [_wav(35)])
    assert one.debug_info.audio_count == 1
    assert r_two.prompt_eval_count - r_one.prompt_eval_count == TOKENS_PER_WINDOW
    assert r_two.message.content


@pytest.mark.parametrize("fmt", ["wav-16k-mono", "wav-44k-stereo", "flac"])
def test_wav_and_flac_are_audio(aclient, fmt):
    data = {"wav-16k-mono": lambda: _wav(2), "wav-44k-stereo": lambda: _wav(2, 44100, 2), "flac": lambda: _flac(2)}
    r = _chat(aclient, [data[fmt]()])
    assert r.message.content
    assert r.prompt_eval_count > TOKENS_PER_WINDOW


def test_bytes_base64_path_and_audio_give_the_same_output(aclient):
    data = CLIP.read_bytes()
    outs = []
    for clip in (data, base64.b64encode(data).decode(), str(CLIP), CLIP, Audio(CLIP)):
        aclient.chat(model="aud", messages=[], keep_alive=0)  # unload: each one is evaluated afresh
        outs.append(_chat(aclient, [clip]).message.content)
    assert len(set(outs)) == 1, outs


def test_a_second_turn_about_the_same_clip_does_not_encode_it_again(aclient):
    aclient.chat(model="aud", messages=[], keep_alive=0)
    _chat(aclient, [str(CLIP)])
    # The answer is a given text, not the generated one: the KV cells of generated tokens (evaluated one at a
    # time) differ in the last bits from those of the same tokens evaluated as a batch, and the warm and
    # fresh runs below are to be equal to the token.
    follow = [
        {"role": "user", "content": PROMPT, "audio": [str(CLIP)]},
        {"role": "assistant", "content": "It is a piece of music."},
        {"role": "user", "content": "And the tempo?"},
    ]
    warm = aclient.chat(model="aud", messages=follow, options=OPTS)
    aclient.chat(model="aud", messages=[], keep_alive=0)
    fresh = aclient.chat(model="aud", messages=follow, options=OPTS)
    assert warm.message.content == fresh.message.content
    assert warm.prompt_eval_count < fresh.prompt_eval_count - TOKENS_PER_WINDOW


def test_generate_with_audio_and_debug_counts(aclient):
    r = aclient.generate(model="aud", prompt=PROMPT, audio=[str(CLIP)], options=OPTS)
    assert r.response
    chat = _chat(aclient, [str(CLIP)])
    assert r.response == chat.message.content  # the prompt is the same user turn
    d = aclient.generate(model="aud", prompt=PROMPT, audio=[str(CLIP)] * 2, _debug_render_only=True)
    assert (d.debug_info.audio_count, d.debug_info.image_count) == (2, None)
    assert d.debug_info.rendered_template.count("<__media_") == 2
    raw = aclient.generate(model="aud", prompt=PROMPT, audio=[str(CLIP)], raw=True, options=OPTS)
    assert raw.response


def test_streaming_with_a_clip(aclient):
    parts = list(_chat(aclient, [str(CLIP)], stream=True))
    assert parts[-1].done
    assert "".join(p.message.content for p in parts) == _chat(aclient, [str(CLIP)]).message.content


def test_concurrent_chats_with_and_without_audio_give_their_solo_outputs(aclient):
    asks = [([str(CLIP)], PROMPT), (None, "Name three colours."), ([_wav(3)], "Describe it."), (None, "Count to five.")]
    # Batched with the others a request may flip a greedy near-tie (tests/near_tie.py); with logprobs to check.
    lp = {"logprobs": True, "top_logprobs": 5}
    alone = [_chat(aclient, clip, text, **lp) for clip, text in asks]
    got: list = [None] * len(asks)

    def run(i):
        clip, text = asks[i]
        got[i] = _chat(aclient, clip, text, **lp)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(asks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for i, (solo, batched) in enumerate(zip(alone, got)):
        assert batched is not None, f"request {i} did not finish"
        assert_chat_same_or_near_tie(solo, batched, f"request {i}")


def test_show_lists_audio_in_capabilities(aclient):
    assert "audio" in aclient.show("aud").capabilities
    assert "vision" not in aclient.show("aud").capabilities
    assert "audio" not in aclient.show("vis").capabilities
    assert {"vision", "audio"} <= set(aclient.show("omni").capabilities)


# -- a message with an image and a clip: images first, then audio -----------------------------------------


def test_a_message_s_images_come_before_its_audio(aclient, omni_pair):
    msg = {"role": "user", "content": "Describe both.", "images": [str(IMAGE)], "audio": [str(CLIP)]}
    d = aclient.chat(model="omni", messages=[msg], _debug_render_only=True).debug_info
    assert (d.image_count, d.audio_count) == (1, 1)
    markers = re.findall(r"<__media_[0-9a-f]{16}__>", d.rendered_template)
    assert len(markers) == 2 and f"{markers[0]}{markers[1]}Describe both." in d.rendered_template
    model, projector = omni_pair
    m = _core.Model(str(model))
    with _core.Projector(str(projector), m, n_threads=2) as p:
        assert p.vision and p.audio
        media = [p.load_media(IMAGE.read_bytes()), p.load_media(CLIP.read_bytes())]
        chunks = p.tokenize(d.rendered_template.replace(markers[0], p.marker), media)
        kinds = [c.kind for c in chunks if c.kind != "text"]
        n_all = sum(c.n_tokens for c in chunks)
    m.close()
    assert kinds == ["image"] * 5 + ["audio"]
    aclient.chat(model="omni", messages=[], keep_alive=0)
    r = aclient.chat(model="omni", messages=[msg], options=OPTS)
    assert r.prompt_eval_count == n_all
    assert r.message.content


def test_an_image_and_a_clip_take_llama_mtmd_cli_s_prompt(aclient, omni_pair, llama_mtmd_cli):
    _, log = _mtmd_cli(llama_mtmd_cli, omni_pair, "Describe both.", [("--image", IMAGE), ("--audio", CLIP)])
    m = re.search(r"prompt eval time =.*?/\s+(\d+) tokens", log)
    assert m is not None, log[-3000:]
    msg = {"role": "user", "content": "Describe both.", "images": [str(IMAGE)], "audio": [str(CLIP)]}
    aclient.chat(model="omni", messages=[], keep_alive=0)
    assert aclient.chat(model="omni", messages=[msg], options=OPTS).prompt_eval_count == int(m[1])


# -- bad input: a typed 400 (or a typed core error), the process unharmed ---------------------------------


def _riff_wave_garbage() -> bytes:
    return b"RIFF" + struct.pack("<I", 1000) + b"WAVE" + b"junk" * 16


@pytest.mark.parametrize(
    ("clip", "message"),
    [
        (_riff_wave_garbage(), "corrupt or truncated"),
        (b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\x55" * 300, "corrupt or truncated"),
        (b"fLaC" + b"\x00" * 40, "corrupt or truncated"),
        (_flac(2)[:3000], "corrupt or truncated"),
        (_wav(0), "0 sample(s)"),
        (_wav(1 / 16000), "1 sample(s)"),
        (_flac(0.01, declared=1 << 35), "more than the limit"),
        ((REPO / "README.md").read_bytes(), "not an audio file"),
        (b"\0" * 64, "not an audio file"),
    ],
    ids=[
        "corrupt-wav",
        "corrupt-mp3",
        "corrupt-flac",
        "truncated-flac",
        "no-samples",
        "one-sample",
        "declared-length-bomb",
        "text-file",
        "zeros",
    ],
)
def test_bad_audio_is_a_400(aclient, clip, message):
    with pytest.raises(ResponseError) as exc:
        _chat(aclient, [clip])
    assert exc.value.status_code == 400
    assert "invalid audio" in str(exc.value) and message in str(exc.value), str(exc.value)
    assert _chat(aclient, [str(CLIP)]).message.content  # the model still serves


def test_a_truncated_mp3_decodes_what_it_holds(aclient):
    # As a truncated JPEG: MP3 frames are independent, so the clip is shorter, not an error.
    r = _chat(aclient, [CLIP.read_bytes()[:40_000]], _debug_render_only=True)
    assert r.debug_info.audio_count == 1


def test_an_empty_clip_is_refused_at_the_request(aclient):
    with pytest.raises((ResponseError, ValueError)):
        _chat(aclient, [b""])


def test_an_image_in_the_audio_list_is_a_400(aclient):
    with pytest.raises(ResponseError) as exc:
        _chat(aclient, [str(IMAGE)], model="omni")
    assert exc.value.status_code == 400
    assert "an image, not an audio file" in str(exc.value)


def test_a_clip_in_the_image_list_is_a_400(aclient):
    with pytest.raises(ResponseError) as exc:
        aclient.chat(model="omni", messages=[{"role": "user", "content": "hi", "images": [str(CLIP)]}], options=OPTS)
    assert exc.value.status_code == 400
    assert "invalid image" in str(exc.value) and "not an image" in str(exc.value)


def test_audio_for_a_vision_only_projector_is_a_400(aclient):
    with pytest.raises(ResponseError) as exc:
        _chat(aclient, [str(CLIP)], model="vis")
    assert exc.value.status_code == 400
    assert "does not support audio" in str(exc.value)
    ok = aclient.chat(model="vis", messages=[{"role": "user", "content": "hi", "images": [str(IMAGE)]}], options=OPTS)
    assert ok.message.content  # the vision model still serves


def test_an_image_for_an_audio_only_projector_is_a_400(aclient):
    with pytest.raises(ResponseError) as exc:
        aclient.chat(model="aud", messages=[{"role": "user", "content": "hi", "images": [str(IMAGE)]}], options=OPTS)
    assert exc.value.status_code == 400
    assert "does not support vision" in str(exc.value)
    with pytest.raises(ResponseError) as exc:
        aclient.generate(model="aud", prompt="hi", images=[str(IMAGE)], options=OPTS)
    assert exc.value.status_code == 400


def test_audio_for_a_model_without_projector_is_a_400(aclient):
    for call in (
        lambda: _chat(aclient, [str(CLIP)], model="text-only"),
        lambda: aclient.generate(model="text-only", prompt="hi", audio=[str(CLIP)]),
    ):
        with pytest.raises(ResponseError) as exc:
            call()
        assert exc.value.status_code == 400
        assert "does not support audio" in str(exc.value)


def test_a_missing_audio_file_is_refused_at_the_request():
    with pytest.raises(ValueError, match="does not exist"):
        Audio("no-such-clip.mp3")


def test_more_audio_than_the_context_holds_is_a_400(aclient):
    with pytest.raises(ResponseError) as exc:
        aclient.chat(
            model="aud",
            messages=[{"role": "user", "content": PROMPT, "audio": [str(CLIP)] * 2}],
            options={**OPTS, "num_ctx": 256},
        )
    assert exc.value.status_code == 400


# -- the core: Projector.load_media on audio ---------------------------------------------------------------


def test_projector_load_media_limits_and_kinds(audio_pair, vision_pair):
    model, projector = audio_pair
    m = _core.Model(str(model))
    with _core.Projector(str(projector), m, n_threads=2, max_audio_seconds=5.0) as p:
        assert (p.vision, p.audio, p.audio_sample_rate, p.max_audio_seconds) == (False, True, 16000, 5.0)
        assert p.load_media(_wav(4.9), "audio").duration == pytest.approx(4.9, abs=1e-3)
        with pytest.raises(MediaError, match=r"lasts 17\.\d s, more than the limit of 5 s"):
            p.load_media(CLIP.read_bytes())
        with pytest.raises(MediaError, match="takes audio, not images"):
            p.load_media(IMAGE.read_bytes())
        with pytest.raises(MediaError, match="an audio file .*not an image"):
            p.load_media(_wav(1), "image")
        with pytest.raises(ValueError, match="kind must be"):
            p.load_media(_wav(1), "video")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_audio_seconds"):
        _core.Projector(str(projector), m, max_audio_seconds=0)
    m.close()
    model, projector = vision_pair
    m = _core.Model(str(model))
    with _core.Projector(str(projector), m, n_threads=2) as p:
        assert (p.vision, p.audio, p.audio_sample_rate) == (True, False, -1)
        with pytest.raises(MediaError, match="takes images, not audio"):
            p.load_media(CLIP.read_bytes())
        img = p.load_media(IMAGE.read_bytes(), "image")
        assert (img.is_audio, img.sample_rate, img.duration) == (False, 0, 0.0)
    m.close()


def test_a_stack_factor_libmtmd_would_abort_on_is_refused(tmp_path, audio_pair, monkeypatch):
    # Ultravox's own stack factor, 8: libmtmd counts 187 embeddings a window and its graph makes 188, and
    # clip_encode aborts the process on the mismatch. The binding refuses the audio instead.
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_test_projector", REPO / "scripts" / "make_test_projector.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setattr(script, "STACK_FACTOR", 8)
    projector = script.write_projector(tmp_path / "mmproj-stack8.gguf", 0, "audio")
    m = _core.Model(str(audio_pair[0]))
    with _core.Projector(str(projector), m, n_threads=2) as p:
        assert p.audio
        with pytest.raises(MediaError, match="makes 188 embeddings where libmtmd counts 187"):
            p.load_media(CLIP.read_bytes())
    m.close()
