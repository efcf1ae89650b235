"""Retrieval: a local vector store (indexer and retriever over a local embedding model) and rerankers.

    from llamanative import Client
    from llamanative.ai.retrieval import ClientEmbedder, VectorStore

    store = VectorStore(ClientEmbedder(Client(), "all-minilm"), path="notes.npz")
    store.index(["The Moon orbits the Earth.", "Bread needs yeast."])
    store.retrieve("What circles our planet?", k=1).documents
    store.search("baking", filter={"topic": "food"})      # with scores

``store.as_retriever("notes")`` is the store as an ``ai`` retriever;
``define_vector_store(ai, "notes", "llamanative/all-minilm")`` registers one
(then ``ai.retrieve("notes", "query", options={"k": 5})``).
``ai.rerank("llamanative/<reranker>", query, candidates)`` orders candidates
with a local reranker model (:class:`ClientReranker`).
"""

from ..retriever import query_document as single_query  # the one "exactly one query document" rule
from .embedders import ClientEmbedder, TextEmbedder, as_text_embedder, embed_texts
from .rerankers import BM25Reranker, ClientReranker, EmbeddingReranker, Reranker, rerank
from .types import DEFAULT_K, RankedDocument, ScoredDocument, VectorRetrieverOptions
from .vector_store import VectorStore, define_vector_store, document_id

__all__ = [
    "BM25Reranker",
    "ClientEmbedder",
    "ClientReranker",
    "DEFAULT_K",
    "EmbeddingReranker",
    "RankedDocument",
    "Reranker",
    "ScoredDocument",
    "TextEmbedder",
    "VectorRetrieverOptions",
    "VectorStore",
    "as_text_embedder",
    "define_vector_store",
    "document_id",
    "embed_texts",
    "rerank",
    "single_query",
]
