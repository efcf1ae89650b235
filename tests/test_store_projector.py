"""Projector GGUFs (llama.cpp's mmproj files) in the store: create, Modelfiles, pulls and show.

The projector is the real test projector of scripts/make_test_projector.py
(the ``vision_pair`` fixture): a GGUF whose ``general.architecture`` is
``clip``. Pulls run against the loopback registry and Hugging Face servers of
test_pull.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import gguf
import numpy as np
import pytest
from test_pull import CONFIG, MODEL, TEMPLATE, Server, digest_of, publish, send_blob, send_json

from llamanative import AsyncClient, Client
from llamanative.errors import StatusError
from llamanative.store import ModelStore, download
from llamanative.store.huggingface import HfFile, pick, pick_projector
from llamanative.store.modelfile import ModelfileError, parse_modelfile
from llamanative.store.store import MEDIA_PROJECTOR

PROJECTOR = MEDIA_PROJECTOR


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _local_only(monkeypatch, server):
    """Nothing leaves the machine; retries are quick."""
    monkeypatch.setenv("LLAMANATIVE_REGISTRY", server.url)
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    for var in ("LLAMANATIVE_REGISTRY_TOKEN", "HF_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(
        download,
        "POLICY",
        download.RetryPolicy(attempts=2, first_delay=0.01, max_delay=0.05, connect_timeout=5, read_timeout=5),
    )


@pytest.fixture
def client(tmp_path):
    with Client(models_dir=tmp_path / "models") as c:
        yield c


@pytest.fixture(scope="module")
def audio_projector(tmp_path_factory) -> Path:
    """A projector GGUF whose header says it has an audio encoder and no vision encoder (one small tensor)."""
    path = tmp_path_factory.mktemp("audio") / "mmproj-audio-F32.gguf"
    w = gguf.GGUFWriter(path, arch="clip")
    w.add_bool("clip.has_vision_encoder", False)
    w.add_bool("clip.has_audio_encoder", True)
    w.add_string("clip.audio.projector_type", "ultravox")
    w.add_tensor("a.position_embd.weight", np.zeros((4, 4), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def sha(path: Path | str) -> str:
    return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()


def layer_types(store: ModelStore, name: str) -> list[str]:
    return [layer["mediaType"] for layer in store.resolve(name).layers]


# -- create --------------------------------------------------------------------------------------


def test_create_with_projector_and_show(client, vision_pair, smollm2_path):
    model, projector = vision_pair
    assert client.create("vis", from_=str(model), projector=str(projector)).status == "success"
    stored = client.store.resolve("vis")
    assert layer_types(client.store, "vis") == ["application/vnd.ollama.image.model", PROJECTOR]
    assert stored.projector is not None and sha(stored.projector) == sha(projector)
    assert Path(stored.projector) == client.store.blob_path(sha(projector))

    shown = client.show("vis")
    info = shown.projector_info
    assert info is not None
    assert info["general.architecture"] == "clip" and info["clip.projector_type"] == "idefics3"
    assert info["clip.vision.image_size"] == 64 and info["clip.vision.projection_dim"] == 576
    assert info["clip.vision.image_mean"] == pytest.approx([0.5, 0.5, 0.5])  # a short array is shown
    assert "vision" in shown.capabilities and "audio" not in shown.capabilities
    assert shown.details.family == "llama" and shown.details.families == ["llama", "clip"]
    listed = {m.model: m for m in client.list().models}
    assert listed["vis:latest"].details.families == ["llama", "clip"]
    assert listed["vis:latest"].size == stored.size > model.stat().st_size + projector.stat().st_size  # + config
    # The generated Modelfile names both files; reading it back gives the projector again.
    mf = parse_modelfile(shown.modelfile)
    assert mf.from_ == str(Path(stored.path)) and mf.projector == stored.projector

    # Without a projector: none of it.
    client.create("text", from_=str(smollm2_path))
    text = client.show("text")
    assert client.store.resolve("text").projector is None
    assert text.projector_info is None and "vision" not in text.capabilities
    assert text.details.families == ["llama"]
    # A plain GGUF path resolved as a model has no projector.
    assert client.store.resolve(str(model)).projector is None


def test_a_projector_with_an_audio_encoder(client, vision_pair, audio_projector):
    model, _ = vision_pair
    client.create("hear", from_=str(model), projector=str(audio_projector))
    shown = client.show("hear")
    assert "audio" in shown.capabilities and "vision" not in shown.capabilities
    assert shown.projector_info["clip.has_audio_encoder"] is True
    assert shown.details.families == ["llama", "clip"]


def test_create_from_a_stored_model_keeps_adds_and_replaces_the_projector(
    client, vision_pair, smollm2_path, audio_projector
):
    model, projector = vision_pair
    client.create("vis", from_=str(model), projector=str(projector))
    client.create("vis-terse", from_="vis", system="Be terse.")  # keeps the projector
    kept = client.store.resolve("vis-terse")
    assert kept.projector == client.store.resolve("vis").projector
    assert kept.layer_text("application/vnd.ollama.image.system") == "Be terse."
    assert "vision" in client.show("vis-terse").capabilities

    client.create("text", from_=str(smollm2_path))
    client.create("text-vis", from_="text", projector=str(projector))  # adds one to a copy
    assert sha(client.store.resolve("text-vis").projector) == sha(projector)
    assert client.store.resolve("text").projector is None  # the source is unchanged

    client.create("vis-audio", from_="vis", projector=str(audio_projector))  # replaces it
    assert layer_types(client.store, "vis-audio").count(PROJECTOR) == 1
    assert sha(client.store.resolve("vis-audio").projector) == sha(audio_projector)

    client.delete("vis")  # the blob stays while a copy uses it
    assert Path(client.store.resolve("vis-terse").projector).is_file()


def test_create_with_projector_from_uploaded_blobs_and_async(client, tmp_path, vision_pair):
    model, projector = vision_pair
    files = {"model.gguf": client.create_blob(model), "mmproj.gguf": client.create_blob(projector)}
    assert client.create("from-blobs", files=files).status == "success"  # the clip file is the projector
    assert sha(client.store.resolve("from-blobs").projector) == sha(projector)
    with pytest.raises(StatusError) as e:
        client.create("two-models", files={"a.gguf": files["model.gguf"], "b.gguf": files["model.gguf"]})
    assert e.value.status_code == 400
    assert e.value.error == (
        "create takes one model GGUF and at most one projector GGUF, not 2 model and 0 projector files"
    )

    async def run():
        async with AsyncClient(models_dir=tmp_path / "models") as ac:
            r = await ac.create("async-vis", from_=str(model), projector=projector)  # a Path works too
            return r.status, (await ac.show("async-vis")).capabilities

    status, caps = asyncio.run(run())
    assert status == "success" and "vision" in caps


def test_bad_projectors_and_a_projector_as_the_model_are_400(client, tmp_path, vision_pair, smollm2_path):
    model, projector = vision_pair
    text = tmp_path / "notes.gguf"
    text.write_text("not a GGUF")
    cut = tmp_path / "cut-mmproj.gguf"
    cut.write_bytes(projector.read_bytes()[:200])

    def refused(**kw) -> StatusError:
        with pytest.raises(StatusError) as e:
            client.create("bad", **kw)
        return e.value

    e = refused(from_=str(model), projector=str(tmp_path / "missing.gguf"))
    assert e.status_code == 404 and e.error == f"projector file {str(tmp_path / 'missing.gguf')!r} not found"

    e = refused(from_=str(model), projector=str(text))
    assert e.status_code == 400
    assert e.error.startswith(f"projector {str(text)!r} is not a GGUF file: ") and "magic bytes" in e.error

    e = refused(from_=str(model), projector=str(cut))
    assert e.status_code == 400 and e.error.startswith(f"projector {str(cut)!r} is not a GGUF file: ")

    e = refused(from_=str(model), projector=str(smollm2_path))  # a model GGUF as the projector
    assert e.status_code == 400
    assert e.error == (
        f"projector {str(smollm2_path)!r} is not a projector: its general.architecture is 'llama', "
        "a projector GGUF's (an mmproj file) is 'clip'"
    )

    e = refused(from_=str(projector))  # the projector as the model
    assert e.status_code == 400
    assert e.error == (
        f"{str(projector)!r} is a projector (general.architecture 'clip'), not a model: "
        "give the model GGUF as from_ and this file as projector"
    )

    e = refused(from_="no-such-model", projector=str(projector))
    assert e.status_code == 404 and e.error == "model 'no-such-model:latest' not found"
    assert client.store.list() == []  # nothing was stored by any of these


# -- Modelfiles ----------------------------------------------------------------------------------


def test_a_modelfile_with_two_from_lines(client, tmp_path, vision_pair):
    model, projector = vision_pair
    for order, (first, second) in enumerate([(model, projector), (projector, model)]):
        mf = parse_modelfile(f"FROM {first}\nFROM {second}\nSYSTEM Look closely.\n")
        assert (mf.from_, mf.projector) == (str(model), str(projector))  # in either order
        client.create(f"mf{order}", **mf.create_kwargs())
        stored = client.store.resolve(f"mf{order}")
        assert sha(stored.projector) == sha(projector) and sha(stored.path) == sha(model)
        assert "vision" in client.show(f"mf{order}").capabilities
        assert parse_modelfile(mf.to_text()) == mf

    # A stored model and a projector file.
    mf = parse_modelfile(f"FROM mf0\nFROM {projector}\n", base_dir=tmp_path)
    assert mf.create_kwargs() == {"from_": "mf0", "projector": str(projector)}


def test_modelfile_from_errors(client, vision_pair, smollm2_path):
    model, projector = vision_pair
    with pytest.raises(ModelfileError) as e:
        parse_modelfile(f"FROM {model}\nFROM smollm2\n")
    assert e.value.line == 2
    assert e.value.message == (
        "FROM smollm2: a second FROM names a projector GGUF file (an mmproj file), not a model name"
    )
    with pytest.raises(ModelfileError) as e:
        parse_modelfile(f"FROM {model}\nFROM {projector}\nFROM {projector}\n")
    assert e.value.line == 3
    assert e.value.message == "a third FROM: a model is built from one model and at most one projector GGUF"
    # Two model GGUFs parse (the second is meant as the projector); create refuses it.
    kw = parse_modelfile(f"FROM {model}\nFROM {smollm2_path}\n").create_kwargs()
    with pytest.raises(StatusError) as se:
        client.create("two", **kw)
    assert se.value.status_code == 400 and "is not a projector: its general.architecture is 'llama'" in se.value.error


# -- the Ollama registry -------------------------------------------------------------------------


def test_registry_pull_keeps_the_projector_layer(client, server, vision_pair):
    model, projector = vision_pair
    pub = publish(
        server,
        "library/vis",
        "v1",
        [(MODEL, model), (PROJECTOR, projector), (TEMPLATE, b"{{ .Prompt }}")],
        config={"model_format": "gguf", "model_family": "llama", "model_families": ["llama", "clip"]},
    )
    steps = list(client.pull("vis:v1", stream=True))
    assert steps[-1].status == "success"
    proj_digest = pub.digest(PROJECTOR)
    mine = [p for p in steps if p.digest == proj_digest]
    assert mine and mine[-1].completed == mine[-1].total == projector.stat().st_size
    stored = client.store.resolve("vis:v1")
    assert [layer["mediaType"] for layer in stored.layers] == [MODEL, PROJECTOR, TEMPLATE]
    assert Path(stored.projector) == client.store.blob_path(proj_digest) and sha(stored.projector) == proj_digest
    shown = client.show("vis:v1")
    assert shown.projector_info["clip.projector_type"] == "idefics3"
    assert "vision" in shown.capabilities and shown.details.families == ["llama", "clip"]
    assert stored.digest == digest_of(pub.manifest)  # the manifest byte for byte
    assert pub.layers[-1][0] == CONFIG and client.store.blob_path(pub.layers[-1][1]).is_file()


# -- Hugging Face --------------------------------------------------------------------------------


def hf_serve(server: Server, repo: str, files: dict[str, bytes | Path]) -> None:
    """Serve ``files`` (path -> content) as the Hub serves a repository: the tree listing and resolve URLs."""
    listing = []
    for path, src in files.items():
        data = src if isinstance(src, bytes) else src.read_bytes()
        server.routes[f"/{repo}/resolve/main/{path}"] = lambda h, src=src: send_blob(h, src)
        listing.append(
            {
                "type": "file",
                "path": path,
                "size": len(data),
                "oid": "b" * 40,
                "lfs": {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134},
            }
        )
    server.routes[f"/api/models/{repo}/tree/main"] = lambda h: send_json(h, listing)


def test_hugging_face_pull_brings_the_mmproj(client, server, vision_pair, smollm2_path):
    model, projector = vision_pair
    hf_serve(
        server,
        "org/vis-GGUF",
        {
            "vis-Q4_K_M.gguf": model,
            "mmproj-vis-F16.gguf": projector,
            "mmproj-vis-F32.gguf": b"GGUF-not-chosen",
            "README.md": b"# vis",
        },
    )
    steps = list(client.pull("hf.co/org/vis-GGUF", stream=True))
    assert steps[-1].status == "success"
    stored = client.store.resolve("hf.co/org/vis-GGUF:latest")
    assert sha(stored.path) == sha(model) and sha(stored.projector) == sha(projector)  # F16 over F32
    assert [p.status for p in steps if p.digest == sha(projector)][0] == f"pulling {sha(projector)[7:19]}"
    assert not server.requests_to("/org/vis-GGUF/resolve/main/mmproj-vis-F32.gguf")  # only one downloaded
    config = json.loads(client.store.blob_path(_config_digest(client.store, "hf.co/org/vis-GGUF:latest")).read_text())
    assert config["rootfs"]["diff_ids"] == [sha(model), sha(projector)]
    shown = client.show("hf.co/org/vis-GGUF")
    assert "vision" in shown.capabilities and shown.details.families == ["llama", "clip"]

    # A repository without mmproj files: no projector layer.
    hf_serve(server, "org/text-GGUF", {"text-Q4_K_M.gguf": smollm2_path})
    list(client.pull("hf.co/org/text-GGUF"))
    assert layer_types(client.store, "hf.co/org/text-GGUF") == [MODEL]


def _config_digest(store: ModelStore, name: str) -> str:
    from llamanative.store.names import parse_name

    return json.loads(store.manifest_path(parse_name(name)).read_bytes())["config"]["digest"]


def files(*paths: str) -> list[HfFile]:
    return [HfFile(p, 10, None) for p in paths]


@pytest.mark.parametrize(
    "model, listed, chosen",
    [
        ("m-Q8_0.gguf", ["mmproj-m-F32.gguf", "mmproj-m-F16.gguf", "mmproj-m-Q8_0.gguf"], "mmproj-m-Q8_0.gguf"),
        ("m-Q4_K_M.gguf", ["mmproj-m-F32.gguf", "mmproj-m-BF16.gguf", "mmproj-m-f16.gguf"], "mmproj-m-f16.gguf"),
        ("m-Q4_K_M.gguf", ["mmproj-m-F32.gguf", "mmproj-m-BF16.gguf"], "mmproj-m-BF16.gguf"),
        ("m-Q4_K_M.gguf", ["mmproj-m-Q8_0.gguf", "mmproj-m-F32.gguf"], "mmproj-m-F32.gguf"),
        ("m-Q4_K_M.gguf", ["mmproj-b.gguf", "mmproj-a.gguf"], "mmproj-a.gguf"),  # else the first by path
        ("m-BF16.gguf", ["mmproj-m-F16.gguf", "mmproj-m-BF16.gguf"], "mmproj-m-BF16.gguf"),
        # The deepest folder on the model's path; another folder's projector is not a candidate.
        ("q8/m-Q8_0.gguf", ["mmproj-F16.gguf", "q8/mmproj-F32.gguf", "q4/mmproj-Q8_0.gguf"], "q8/mmproj-F32.gguf"),
        ("q8/m-Q8_0.gguf", ["mmproj-F16.gguf", "q4/mmproj-Q8_0.gguf"], "mmproj-F16.gguf"),
        ("m-Q8_0.gguf", ["q8/mmproj-Q8_0.gguf"], None),
        ("m-Q8_0.gguf", ["m-Q4_K_M.gguf", "README.md"], None),
    ],
)
def test_the_mmproj_choice(model, listed, chosen):
    got = pick_projector(files(model, *listed), HfFile(model, 10, None))
    assert (got.path if got else None) == chosen


def test_an_mmproj_file_is_never_the_model():
    listed = files("mmproj-m-Q4_K_M.gguf", "m-Q4_K_M.gguf", "x/mmproj-Q8_0.gguf")
    assert pick(listed, "Q4_K_M", "org/m").path == "m-Q4_K_M.gguf"  # though the mmproj name is a hit too
    with pytest.raises(StatusError) as e:
        pick(listed, "Q8_0", "org/m")
    assert e.value.status_code == 404 and "available: Q4_K_M)" in e.value.error
    with pytest.raises(StatusError) as e:
        pick(files("mmproj-m-F16.gguf"), "F16", "org/m")
    assert e.value.status_code == 404
    assert e.value.error.endswith("has no GGUF file for F16 (its GGUF files are all projectors (mmproj))")
