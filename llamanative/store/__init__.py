"""The model store: names to GGUF blobs on disk (Ollama's layout)."""

from .names import ModelName, parse_name
from .store import ModelStore, StoredModel, default_root, sha256_file

__all__ = ["ModelName", "ModelStore", "StoredModel", "default_root", "parse_name", "sha256_file"]
