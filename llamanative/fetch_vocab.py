"""Fetch llama.cpp's tokenizer golden files, which the tokenizer parity tests read.

llama.cpp keeps vocab-only GGUFs (``ggml-vocab-<name>.gguf``) with test inputs
(``.gguf.inp``) and the token ids its tokenizer gives for them
(``.gguf.out``). The PyPI sdist of llama-cpp-python that the vendored llama.cpp
was taken from carries them in ``vendor/llama.cpp/models/``: it is downloaded
once with ``pip download --no-deps``, the files below are taken out of it and
checked against their sha256, and they are cached in ``ggml-vocab-<sdist>/``
under :func:`llamanative.fetch.cache_dir`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from .fetch import ModelFetchError, cache_dir
from .store.store import sha256_file

__all__ = ["SDIST", "SHA256", "VOCABS", "fetch_vocab_files"]

SDIST = "llama-cpp-python==0.3.36"
_MEMBER_DIR = "vendor/llama.cpp/models/"

# Every vocab with a golden pair: the GGUF, its inputs and the expected ids.
SHA256 = {
    "ggml-vocab-bert-bge.gguf": "fbcbe22278fb302694d5f4a41bfe48c5f90e8e3554eab1c0435387dff654a854",
    "ggml-vocab-bert-bge.gguf.inp": "be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0",
    "ggml-vocab-bert-bge.gguf.out": "8f95b1d4e5680634af06ac5a1b19f15ddeb743d3a6240056625e4345a4b06917",
    "ggml-vocab-command-r.gguf": "a2f8cfea952ef7c391a6d92a1c309d0bd32e36384d9b9230569a7425732f27d9",
    "ggml-vocab-command-r.gguf.inp": "be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0",
    "ggml-vocab-command-r.gguf.out": "d2a601336e422b60a264858c01b14c5d37575fe1f9adfcafc2f3b3707903903f",
    "ggml-vocab-deepseek-coder.gguf": "91cb1379f2e33af1c4866b194622b7a0e12e8f0c9dba7ba2f10d55978730bec1",
    "ggml-vocab-deepseek-coder.gguf.inp": "be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0",
    "ggml-vocab-deepseek-coder.gguf.out": "c2cea4584b0487e67fbd81f491bb44f89238722062126120d2c412edb3dbd853",
    "ggml-vocab-deepseek-llm.gguf": "867f77537b54565f0d81d508c04edc41aa1d4ffc1a92745f225b4c1b02755f76",
    "ggml-vocab-deepseek-llm.gguf.inp": "be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0",
    "ggml-vocab-deepseek-llm.gguf.out": "87cfc1a8a9a7ef25d04d28c26a67b6a620af7be938c9bd0feeb4d319b9302832",
    "ggml-vocab-falcon.gguf": "9f0bf8b0733680398b72e652e90f260f43782f326e75545fc0e49611a5ba35ad",
    "ggml-vocab-falcon.gguf.inp": "be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0",
    "ggml-vocab-falcon.gguf.out": "f8c80a0483582ef195c2129b69bb2e4e421b0f31ed7b35d84b63511d7ebae7cd",
    "ggml-vocab-gemma-4.gguf": "58b1ba0b57f3b4d7c468ba4ffd91ad85190346a3d7ad7e71d1cabaae8a14bb65",
    "ggml-vocab-gemma-4.gguf.inp": "0528aa007b06965f980181d252b5dff7bb170a77af6157bd48bba56885374448",
    "ggml-vocab-gemma-4.gguf.out": "ba8c596bcd05e97e62566fa994b42eeaeffd6a4e4b4a4abe7b5b689aa6b43bf3",
    "ggml-vocab-gpt-2.gguf": "cedc56ca6e2e89f63e781696d1fd76b4b1d49e6720dee86463e915f6e90016ac",
    "ggml-vocab-gpt-2.gguf.inp": "be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0",
    "ggml-vocab-gpt-2.gguf.out": "48e8c4cb3ad5c37915b225f872222567c1c4dd4d66951aa53460c8d152ff6d60",
    "ggml-vocab-llama-bpe.gguf": "97272e430d53bc7688f52d5e0ad8ea8f163ede9f1bbd1694feaa504797d5d96e",
    "ggml-vocab-llama-bpe.gguf.inp": "be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0",
    "ggml-vocab-llama-bpe.gguf.out": "118abf2034a197fc5c9dec5204dfdeee7004c7c70952ae577f66b99e212fab9b",
    "ggml-vocab-llama-spm.gguf": "16c3724582d59aa8bf84711894e833f916ee46a31d80e21312759c48bf8d0e69",
    "ggml-vocab-llama-spm.gguf.inp": "be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0",
    "ggml-vocab-llama-spm.gguf.out": "ad6905c925c49c022974fe67e030382e8a4f56eb4489a0b9481dcedb1ec73b29",
    "ggml-vocab-mpt.gguf": "59dc382612866d1fc6c11ea531318d327598f3412d9c8f8600607cdf3030898f",
    "ggml-vocab-mpt.gguf.inp": "be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0",
    "ggml-vocab-mpt.gguf.out": "9d0982a7e7950b81bc2e325fb61bb7e295d2238934ab889737494de2dc4d906b",
    "ggml-vocab-phi-3.gguf": "967d7190d11c4842eab697079d98d56c2116e10eb617be355a2733bfc132e326",
    "ggml-vocab-phi-3.gguf.inp": "be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0",
    "ggml-vocab-phi-3.gguf.out": "ad6905c925c49c022974fe67e030382e8a4f56eb4489a0b9481dcedb1ec73b29",
    "ggml-vocab-qwen2.gguf": "44c2f46b715f585c6ab513970e8a006bfa5badd6108560054921cf598d154d8c",
    "ggml-vocab-qwen2.gguf.inp": "be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0",
    "ggml-vocab-qwen2.gguf.out": "de785bb305cc6fa9d43908ed5da337f853c0b79e971348fcfb9f0915a39c5363",
    "ggml-vocab-qwen35.gguf": "63ed952ff338996cf0bdf24a7b10015124273f75c6dc9bb427356aa3f67ec62c",
    "ggml-vocab-qwen35.gguf.inp": "0fc6547e7876cd5b2ef64a9d319c6e39040eb53986660bd4227ed7ddef017a94",
    "ggml-vocab-qwen35.gguf.out": "5efe225820325303857d0a087a8d59216f0d1e9a9e31133e7a5b44c3c4e1e9ca",
    "ggml-vocab-refact.gguf": "ac3ceda902fed91ccf74312b305d9b86c37e4f8e35fa9cc6ef3ce34fca7d4678",
    "ggml-vocab-refact.gguf.inp": "be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0",
    "ggml-vocab-refact.gguf.out": "c7e5c1c5dc1dfd3e0d56576bf699d2aca0b760b80779523ea9d323aad6cd1b88",
    "ggml-vocab-starcoder.gguf": "fedb892b4e1bd3c1f2fcdae356440b14fb458f4264d586e5c987ed93df4e174d",
    "ggml-vocab-starcoder.gguf.inp": "be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0",
    "ggml-vocab-starcoder.gguf.out": "3ef12183c57ad076f9defd8e5eb454f509f5f0865cad35646abb4c4b2d2c5764",
}
VOCABS: tuple[str, ...] = tuple(sorted(n for n in SHA256 if n.endswith(".gguf")))


def _vocab_dir() -> Path:
    return cache_dir() / f"ggml-vocab-{SDIST.replace('==', '-')}"


def _download_sdist(dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", SDIST.split("==")[0]]
    proc = subprocess.run([*cmd, "--quiet", "--dest", str(dest), SDIST], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ModelFetchError(f"pip could not download {SDIST!r} (exit {proc.returncode}):\n{proc.stderr.strip()}")
    archives = list(dest.glob("*.tar.gz"))
    if len(archives) != 1:
        raise ModelFetchError(f"pip downloaded {len(archives)} source archives for {SDIST!r}")
    return archives[0]


def _extract(archive: Path, dest: Path) -> None:
    """Copy the members named in :data:`SHA256` out of the sdist into ``dest``, checking each one."""
    wanted = set(SHA256)
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            # Members are "<project>-<version>/vendor/llama.cpp/models/<file>".
            head, _, rest = member.name.partition("/")
            name = rest.removeprefix(_MEMBER_DIR)
            if not head or name == rest or name not in wanted or not member.isfile():
                continue
            src = tar.extractfile(member)
            assert src is not None
            with src, open(dest / name, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            digest = sha256_file(dest / name)
            if digest != SHA256[name]:
                raise ModelFetchError(f"{archive.name}: {name} has sha256 {digest}, expected {SHA256[name]}")
            wanted.discard(name)
    if wanted:
        raise ModelFetchError(f"{archive.name} lacks {', '.join(sorted(wanted))}")


def fetch_vocab_files(*, quiet: bool = False) -> Path:
    """The folder holding every file of :data:`SHA256`, downloading the sdist first if needed.

    Raises:
        ModelFetchError: the download failed, or a file is missing or does not
            match its sha256.
    """
    target = _vocab_dir()
    if all((target / name).is_file() for name in SHA256):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    if not quiet:
        print(f"llamanative: fetching the tokenizer golden files from {SDIST} on PyPI ...", file=sys.stderr)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        tmpdir = Path(tmp)
        files = tmpdir / "files"
        files.mkdir()
        _extract(_download_sdist(tmpdir), files)
        # Atomic: the folder appears complete or not at all.
        shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(files, target)
        except OSError:
            if not all((target / name).is_file() for name in SHA256):  # not another process's complete copy
                raise
    return target


if __name__ == "__main__":  # python -m llamanative.fetch_vocab
    print(fetch_vocab_files())
