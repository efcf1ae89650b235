"""scripts/make_test_projector.py: the image and audio tests' model pairs, checked against llama.cpp's own
llama-mtmd-cli.

The generator writes the same bytes on every run, and llama.cpp's multimodal
tool loads the pair, tiles and encodes the test photo (640x488: a 2x2 grid of
64x64 tiles plus an overview, 16 tokens each) into the text model's context
and generates from it; with the audio projector it encodes the test clip (17
s of MP3: one 30-second window, 150 embeddings).
"""

from __future__ import annotations

import re
import subprocess

from conftest import REPO, make_test_projector

IMAGE = REPO / "vendor" / "llama.cpp" / "tools" / "mtmd" / "test-1.jpeg"
TILES = 5  # the 2x2 grid and the overview
TOKENS_PER_TILE = 16  # (64 / 8 / 2)^2: tile size / patch size / pixel-shuffle factor
AUDIO = REPO / "vendor" / "llama.cpp" / "tools" / "mtmd" / "test-2.mp3"
TOKENS_PER_WINDOW = 150  # 3000 mel frames / 2 (stride-2 convolution) / 10 (frames stacked)


def test_generator_is_deterministic(vision_pair, tmp_path):
    again = make_test_projector(tmp_path)
    for first, second in zip(vision_pair, again, strict=True):
        assert first.name == second.name
        assert first.read_bytes() == second.read_bytes(), f"{first.name} differs between two runs"


def test_llama_mtmd_cli_encodes_the_image(vision_pair, llama_mtmd_cli):
    model, projector = vision_pair
    argv = [str(llama_mtmd_cli), "-m", str(model), "--mmproj", str(projector), "--image", str(IMAGE)]
    argv += ["-p", "Describe", "-n", "8", "--temp", "0", "--seed", "0", "-t", "2", "-c", "1024"]
    argv += ["-lv", "4"]  # the info lines of libmtmd and of the perf summary
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    tail = log[-4000:]
    assert proc.returncode == 0, f"llama-mtmd-cli failed ({proc.returncode}):\n{tail}"

    assert re.search(r"load_hparams: projector:\s+idefics3\n", log), tail
    assert len(re.findall(r"mtmd batch encoding done in \d+ ms", log)) == TILES, tail
    tokens = [int(n) for n in re.findall(r"decoding image batch \d+/\d+, n_tokens_batch = (\d+)", log)]
    assert tokens == [TOKENS_PER_TILE] * TILES, tail
    assert len(re.findall(r"image decoded \(batch \d+/\d+\) in \d+ ms", log)) == TILES, tail
    # the image's tokens are in the prompt that was evaluated, and greedy generation followed
    prompt = re.search(r"prompt eval time =.*?/\s+(\d+) tokens", log)
    assert prompt is not None and int(prompt[1]) > TILES * TOKENS_PER_TILE, tail
    runs = re.search(r"llama_perf_context_print:\s+eval time =.*?/\s+(\d+) runs", log)
    assert runs is not None and int(runs[1]) >= 1, tail


def test_audio_generator_is_deterministic_and_keeps_the_text_model(audio_pair, vision_pair, tmp_path):
    again = make_test_projector(tmp_path, "audio")
    for first, second in zip(audio_pair, again, strict=True):
        assert first.name == second.name
        assert first.read_bytes() == second.read_bytes(), f"{first.name} differs between two runs"
    assert audio_pair[0].read_bytes() == vision_pair[0].read_bytes()  # one text model for every kind
    assert audio_pair[1].name != vision_pair[1].name


def test_llama_mtmd_cli_encodes_the_audio(audio_pair, llama_mtmd_cli):
    model, projector = audio_pair
    argv = [str(llama_mtmd_cli), "-m", str(model), "--mmproj", str(projector), "--audio", str(AUDIO)]
    argv += ["-p", "Describe", "-n", "8", "--temp", "0", "--seed", "0", "-t", "2", "-c", "1024", "-lv", "4"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    tail = log[-4000:]
    assert proc.returncode == 0, f"llama-mtmd-cli failed ({proc.returncode}):\n{tail}"

    assert re.search(r"load_hparams: projector:\s+ultravox\n", log), tail
    assert "has audio encoder" in log and "has vision encoder" not in log, tail
    tokens = [int(n) for n in re.findall(r"decoding audio batch \d+/\d+, n_tokens_batch = (\d+)", log)]
    assert tokens == [TOKENS_PER_WINDOW], tail
    prompt = re.search(r"prompt eval time =.*?/\s+(\d+) tokens", log)
    assert prompt is not None and int(prompt[1]) > TOKENS_PER_WINDOW, tail


def test_llama_mtmd_cli_takes_an_image_and_audio_through_the_two_encoder_projector(omni_pair, llama_mtmd_cli):
    model, projector = omni_pair
    argv = [str(llama_mtmd_cli), "-m", str(model), "--mmproj", str(projector), "--image", str(IMAGE)]
    argv += ["--audio", str(AUDIO), "-p", "Describe", "-n", "4", "--temp", "0", "-t", "2", "-c", "1024", "-lv", "4"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    tail = log[-4000:]
    assert proc.returncode == 0, f"llama-mtmd-cli failed ({proc.returncode}):\n{tail}"
    assert "has vision encoder" in log and "has audio encoder" in log, tail
    images = re.findall(r"decoding image batch \d+/\d+, n_tokens_batch = (\d+)", log)
    audio = re.findall(r"decoding audio batch \d+/\d+, n_tokens_batch = (\d+)", log)
    assert [int(n) for n in images] == [TOKENS_PER_TILE] * TILES, tail
    assert [int(n) for n in audio] == [TOKENS_PER_WINDOW], tail
