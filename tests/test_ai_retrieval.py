"""The local vector store (MiniLM embeddings), its persistence, filters and the rerankers."""

from __future__ import annotations

import numpy as np
import pytest

from llamanative.ai.embedder import new_embedder
from llamanative.ai.errors import InvalidArgumentError
from llamanative.ai.messages import Document
from llamanative.ai.retrieval import (
    BM25Reranker,
    ClientEmbedder,
    EmbeddingReranker,
    RankedDocument,
    VectorStore,
    document_id,
    rerank,
)
from llamanative.ai.retriever import Retriever, RetrieverRequest, RetrieverResponse

# Twenty short documents, one topic each.
TOPICS = {
    "mars": ("space", "Mars is called the red planet because iron oxide covers its surface."),
    "moon": ("space", "The Moon orbits the Earth about once every 27 days and causes the tides."),
    "bread": ("food", "Bread dough rises because yeast ferments sugar and releases carbon dioxide."),
    "coffee": ("food", "Espresso is brewed by forcing hot water through finely ground coffee beans."),
    "python": ("tech", "Python is a programming language known for its readable indentation-based syntax."),
    "gpu": ("tech", "Graphics cards run thousands of parallel threads to render images and train neural networks."),
    "soccer": ("sport", "In football a team scores by kicking the ball into the opponent's goal."),
    "tennis": ("sport", "Tennis players hit a ball over a net with rackets on a rectangular court."),
    "piano": ("music", "The piano makes sound when felt hammers strike its steel strings."),
    "violin": ("music", "A violin is played by drawing a bow across four strings."),
    "volcano": ("earth", "Volcanoes erupt when molten rock called magma rises through the crust."),
    "rain": ("earth", "Rain falls when water droplets in clouds grow heavy enough to fall."),
    "heart": ("body", "The heart pumps blood through arteries and veins around the body."),
    "sleep": ("body", "Adults need about seven to nine hours of sleep each night to stay healthy."),
    "rome": ("history", "The Roman Empire built roads and aqueducts across Europe."),
    "egypt": ("history", "The ancient Egyptians built the pyramids as tombs for their pharaohs."),
    "bees": ("nature", "Bees collect nectar from flowers and turn it into honey in the hive."),
    "oak": ("nature", "Oak trees grow acorns and can live for several hundred years."),
    "tax": ("money", "Income tax is a share of your earnings paid to the government."),
    "bank": ("money", "A savings account at a bank pays interest on the money you deposit."),
}

QUERIES = [
    ("Which planet is red?", "mars"),
    ("What causes ocean tides?", "moon"),
    ("How does yeast make dough rise?", "bread"),
    ("Which programming language uses indentation?", "python"),
    ("How is honey made?", "bees"),
    ("Who built the pyramids?", "egypt"),
    ("How many hours should I sleep?", "sleep"),
    ("What comes out of an erupting volcano?", "volcano"),
]


def docs() -> list[Document]:
    return [Document.from_text(text, {"id": key, "topic": topic}) for key, (topic, text) in TOPICS.items()]


class CountingEmbedder:
    """MiniLM through the Client, counting the calls and texts."""

    def __init__(self, inner: ClientEmbedder) -> None:
        self.inner = inner
        self.calls: list[int] = []
        self.name = inner.name

    def __call__(self, texts):
        self.calls.append(len(texts))
        return self.inner(texts)


@pytest.fixture(scope="module")
def minilm_embedder(client, minilm_path):
    return ClientEmbedder(client, str(minilm_path), options={"num_thread": 1})


@pytest.fixture(scope="module")
def store(minilm_embedder):
    s = VectorStore(minilm_embedder, name="topics")
    s.index(docs())
    return s


def ids_of(response) -> list[str]:
    return [(d.metadata or {}).get("id", d.text()) for d in response.documents]


def test_index_embeds_all_documents_in_one_call(minilm_embedder):
    counting = CountingEmbedder(minilm_embedder)
    s = VectorStore(counting)
    ids = s.index(docs())
    assert counting.calls == [20]
    assert ids == list(TOPICS) and len(s) == 20 and s.dimensions == 384
    np.testing.assert_allclose(np.linalg.norm(s.embeddings, axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("query,expected", QUERIES)
def test_the_right_document_ranks_first(store, query, expected):
    assert ids_of(store.retrieve(query, k=1)) == [expected]


def test_default_k_and_limits(store):
    assert len(store.retrieve("planets").documents) == 3
    assert len(store.retrieve("planets", k=5).documents) == 5
    assert store.retrieve("planets", k=0).documents == []
    assert len(store.retrieve("planets", k=100).documents) == 20
    with pytest.raises(InvalidArgumentError):
        store.retrieve("planets", k=-1)


def test_scores_are_cosine_similarities_best_first(store, minilm_embedder):
    hits = store.search("musical instruments with strings", k=20)
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert {hits[0].id, hits[1].id} == {"violin", "piano"}
    q = minilm_embedder(["musical instruments with strings"])[0]
    by_id = dict(zip(store.ids, store.embeddings @ (q / np.linalg.norm(q))))
    for h in hits:
        assert h.score == pytest.approx(float(by_id[h.id]), abs=1e-5)


def test_metadata_filter_and_predicate(store):
    food = store.retrieve("Which planet is red?", k=5, filter={"topic": "food"})
    assert sorted(ids_of(food)) == ["bread", "coffee"]
    assert store.retrieve("anything", filter={"topic": "nope"}).documents == []
    assert store.retrieve("anything", filter={"missing_key": None}).documents == []
    sport = store.retrieve("a ball game with a net", k=1, filter=lambda d: d.metadata["topic"] == "sport")
    assert ids_of(sport) == ["tennis"]
    # Options as Genkit passes them: a mapping in the request.
    req = RetrieverRequest(
        query=Document.from_text("a ball game with a net"), options={"k": 2, "filter": {"topic": "sport"}}
    )
    assert sorted(ids_of(store(req))) == ["soccer", "tennis"]
    with pytest.raises(InvalidArgumentError, match="unknown retriever options"):
        store.retrieve("x", {"top": 2})


def test_exactly_one_query_document(store):
    with pytest.raises(InvalidArgumentError, match="only supports a single document"):
        store.retrieve(["red planet", "honey"])
    with pytest.raises(InvalidArgumentError, match="a query document is required"):
        store.retrieve([])
    with pytest.raises(InvalidArgumentError, match="a query document is required"):
        store.search(None)
    assert ids_of(store.retrieve([Document.from_text("Which planet is red?")], k=1)) == ["mars"]
    assert ids_of(store.retrieve({"content": [{"text": "Which planet is red?"}]}, k=1)) == ["mars"]


def test_persistence_round_trip(store, minilm_embedder, tmp_path):
    path = store.save(tmp_path / "topics.npz")
    assert [p.name for p in tmp_path.iterdir()] == ["topics.npz"]  # no temporary file left behind
    loaded = VectorStore.load(path, minilm_embedder)
    assert loaded.ids == store.ids and loaded.name == "topics"
    np.testing.assert_array_equal(loaded.embeddings, store.embeddings)
    assert [d.to_dict() for d in (loaded.get(i) for i in loaded.ids)] == [
        d.to_dict() for d in (store.get(i) for i in store.ids)
    ]
    for query, _ in QUERIES[:3]:
        a, b = store.search(query, k=5), loaded.search(query, k=5)
        assert [(h.id, h.score) for h in a] == [(h.id, h.score) for h in b]


def test_path_store_saves_after_each_change(minilm_embedder, tmp_path):
    path = tmp_path / "notes.npz"
    s = VectorStore(minilm_embedder, path=path)
    s.index(["Cats purr when they are content."])
    again = VectorStore(minilm_embedder, path=path)
    assert len(again) == 1
    again.index(["Dogs wag their tails."])
    assert len(VectorStore(minilm_embedder, path=path)) == 2
    again.delete(again.ids[0])
    reopened = VectorStore(minilm_embedder, path=path)
    assert [d.text() for d in reopened.retrieve("pets", k=5).documents] == ["Dogs wag their tails."]


def test_incremental_indexing_duplicates_upsert_and_delete(minilm_embedder):
    counting = CountingEmbedder(minilm_embedder)
    s = VectorStore(counting)
    first = s.index(docs()[:10])
    later = s.index(docs()[10:])
    assert first + later == list(TOPICS) and len(s) == 20
    assert ids_of(s.retrieve("Who built the pyramids?", k=1)) == ["egypt"]
    # A document already stored is skipped without embedding it again (Genkit's rule).
    n_calls = len(counting.calls)
    assert s.index([docs()[0]]) == ["mars"] and len(counting.calls) == n_calls and len(s) == 20
    # Without an id in the metadata, the id is a hash of the document: equal documents, one entry.
    h = s.index(["Penguins live in the Antarctic.", "Penguins live in the Antarctic."])
    assert h[0] == h[1] == document_id(Document.from_text("Penguins live in the Antarctic.")) and len(s) == 21
    # upsert replaces the stored document and its embedding.
    s.index([Document.from_text("The Moon is made of cheese.", {"id": "moon", "topic": "jokes"})], upsert=True)
    assert s.get("moon").text() == "The Moon is made of cheese." and len(s) == 21
    assert ids_of(s.retrieve("cheese", k=1)) == ["moon"]
    assert s.delete(["mars", "nope"]) == 1 and "mars" not in s and len(s) == 20
    assert "mars" not in ids_of(s.retrieve("Which planet is red?", k=5))
    assert ids_of(s.retrieve("How is honey made?", k=1)) == ["bees"]  # rows still line up after the delete
    with pytest.raises(InvalidArgumentError, match="empty"):
        s.index([""])


def test_store_as_ai_retriever(store):
    r = store.as_retriever("topics")
    assert isinstance(r, Retriever) and r.name == "topics" and r.config_schema["properties"]["k"]
    resp = r.retrieve(RetrieverRequest(query=Document.from_text("How is honey made?"), options={"k": 1}))
    assert isinstance(resp, RetrieverResponse) and ids_of(resp) == ["bees"]


def test_ai_embedder_works_as_the_store_embedder(minilm_embedder):
    emb = new_embedder("minilm", lambda documents: minilm_embedder([d.text() for d in documents]))
    s = VectorStore(emb)
    s.index(docs())
    assert ids_of(s.retrieve("Which planet is red?", k=1)) == ["mars"]


def test_bm25_reranker_orders_by_word_overlap(store):
    candidates = store.retrieve("strings", k=6).documents
    ranked = rerank(BM25Reranker(), "violin bow strings", candidates)
    assert isinstance(ranked[0], RankedDocument) and ranked[0].metadata["id"] == "violin"
    assert [r.score for r in ranked] == sorted((r.score for r in ranked), reverse=True)
    assert ranked[-1].score == 0.0 or ranked[-1].score < ranked[0].score
    assert len(rerank(BM25Reranker(), "violin", candidates, k=2)) == 2
    wire = ranked[0].to_dict()
    assert wire["metadata"]["score"] == ranked[0].score and wire["content"] == [{"text": ranked[0].text()}]


def test_embedding_reranker_on_search_hits(store, minilm_embedder):
    hits = store.search("sports", k=8, filter=lambda d: d.metadata["topic"] in ("sport", "music"))
    ranked = EmbeddingReranker(minilm_embedder).rerank("hitting a ball with a racket", hits_docs(hits))
    assert ranked[0].metadata["id"] == "tennis"
    assert (
        rerank(EmbeddingReranker(minilm_embedder), "hitting a ball with a racket", hits, {"k": 1})[0].metadata["id"]
        == "tennis"
    )
    with pytest.raises(InvalidArgumentError):
        rerank(EmbeddingReranker(minilm_embedder), ["a", "b"], hits)


def hits_docs(hits):
    return [h.document for h in hits]


def test_rag_flow_through_the_registry(client, minilm_path, smollm2_path):
    from llamanative.ai import Genkit
    from llamanative.ai.retrieval import define_vector_store

    ai = Genkit(client=client)
    store = define_vector_store(ai, "topics", f"llamanative/{minilm_path}", options={"num_thread": 1})
    store.index(docs())
    found = ai.retrieve("topics", "Which planet is red?", options={"k": 2})
    assert ids_of(found)[0] == "mars" and len(found.documents) == 2
    with pytest.raises(InvalidArgumentError, match="single document"):
        ai.retrieve("topics", ["Which planet is red?", "honey"])
    resp = ai.generate(
        model=f"llamanative/{smollm2_path}",
        prompt="Why is Mars red?",
        docs=found.documents[:1],
        config={"temperature": 0, "maxOutputTokens": 12, "num_thread": 1},
    )
    assert resp.text().strip()
    assert [d.metadata["id"] for d in resp.request.docs] == ["mars"]  # the retrieved context reached the model


def test_one_query_rule_for_the_registry_and_the_store(client, minilm_path):
    """``ai.retrieve`` and the store apply the same rule (one implementation: ``retriever.query_document``)."""
    from llamanative.ai import Genkit, Message
    from llamanative.ai.retrieval import define_vector_store, single_query
    from llamanative.ai.retriever import query_document

    assert single_query is query_document
    ai = Genkit(client=client)
    store = define_vector_store(ai, "rule", f"llamanative/{minilm_path}", options={"num_thread": 1})
    store.index(docs())
    for query in (
        "Which planet is red?",
        Document.from_text("Which planet is red?"),
        {"content": [{"text": "Which planet is red?"}]},
        Message(role="user", content="Which planet is red?"),
        ("Which planet is red?",),
    ):
        assert ids_of(ai.retrieve("rule", query, options={"k": 1})) == ["mars"]
        assert ids_of(store.retrieve(query, k=1)) == ["mars"]
    for bad, match in (([], "required"), (None, "required"), (["a", "b"], "single document"), (42, "not a document")):
        with pytest.raises(InvalidArgumentError, match=match):
            ai.retrieve("rule", bad)
        with pytest.raises(InvalidArgumentError, match=match):
            store.retrieve(bad)
