"""The model store: names, create/list/copy/delete in Ollama's layout, path traversal refused."""

from __future__ import annotations

import json

import pytest

from llamanative.errors import StatusError
from llamanative.store import ModelStore, parse_name, sha256_file


@pytest.mark.parametrize(
    "name, parts",
    [
        ("smollm2", ("registry.ollama.ai", "library", "smollm2", "latest")),
        ("smollm2:135m", ("registry.ollama.ai", "library", "smollm2", "135m")),
        ("me/tiny:v1", ("registry.ollama.ai", "me", "tiny", "v1")),
        ("hf.co/org/model:Q4_K_M", ("hf.co", "org", "model", "Q4_K_M")),
        ("localhost:5000/ns/m:t", ("localhost:5000", "ns", "m", "t")),
    ],
)
def test_names(name, parts):
    assert parse_name(name).parts() == parts


@pytest.mark.parametrize(
    "bad", ["", " ", "../etc/passwd", "a/../../b", "a/b/c/d", "m:..", "..:x", "model name", "/abs", "m:"]
)
def test_bad_names_are_400(bad):
    with pytest.raises(StatusError) as e:
        parse_name(bad)
    assert e.value.status_code == 400


def test_create_list_show_copy_delete(tmp_path, smollm2_path):
    store = ModelStore(tmp_path / "models")
    m = store.create(
        "tiny:latest",
        from_=str(smollm2_path),
        system="Be brief.",
        parameters={"temperature": 0.2},
        template="{{ .Prompt }}",
    )
    assert m.name == "tiny:latest"
    assert sha256_file(m.path) == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    assert m.layer_text("application/vnd.ollama.image.system") == "Be brief."
    assert m.layer_json("application/vnd.ollama.image.params") == {"temperature": 0.2}
    manifest = tmp_path / "models/manifests/registry.ollama.ai/library/tiny/latest"
    assert json.loads(manifest.read_text())["layers"][0]["mediaType"] == "application/vnd.ollama.image.model"
    store.copy("tiny", "other/tiny:v2")
    assert sorted(x.name for x in store.list()) == ["other/tiny:v2", "tiny:latest"]
    n_blobs = len(list((tmp_path / "models/blobs").iterdir()))
    store.delete("tiny")
    assert len(list((tmp_path / "models/blobs").iterdir())) == n_blobs  # still used by the copy
    store.delete("other/tiny:v2")
    assert list((tmp_path / "models/blobs").iterdir()) == []
    with pytest.raises(StatusError) as e:
        store.resolve("tiny")
    assert e.value.status_code == 404
    with pytest.raises(StatusError):
        store.delete("tiny")


def test_plain_gguf_path_is_a_model_name(tmp_path, smollm2_path):
    m = ModelStore(tmp_path).resolve(str(smollm2_path))
    assert m.path == str(smollm2_path.resolve()) and m.size == smollm2_path.stat().st_size
    with pytest.raises(StatusError):
        ModelStore(tmp_path).resolve(str(tmp_path / "missing.gguf"))
