"""`faq.unanswered.group_texts` remembers each key's best group instead of comparing every
message with every group; the groups must be exactly those of the plain algorithm."""

from __future__ import annotations

import random
from collections.abc import Sequence

from rapidfuzz import fuzz, process

from faq.unanswered import CUTOFF, group_texts, key_of


def plain_groups(texts: Sequence[str], *, cutoff: float = CUTOFF) -> list[list[int]]:
    """The definition: each message joins the group its key scores best with."""
    groups: list[list[int]] = []
    keys: list[str] = []
    for index, text in enumerate(texts):
        key = key_of(text)
        best = process.extractOne(key, keys, scorer=fuzz.token_set_ratio, processor=None,
                                  score_cutoff=cutoff) if keys else None
        if best is None:
            groups.append([index])
            keys.append(key)
        else:
            groups[best[2]].append(index)
    return sorted(groups, key=lambda g: (-len(g), g[0]))


WORDS = ("do", "you", "sell", "gift", "box", "boxes", "giftboxes", "have", "where", "is", "my",
         "order", "refund", "return", "the", "shoes", "too", "small", "blue", "jacket", "back",
         "in", "stock", "배송", "언제", "와요", "환불")


def test_grouping_equals_comparing_every_message_with_every_group() -> None:
    rng = random.Random(11)
    for _ in range(300):
        texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 6)))
                 for _ in range(rng.randint(1, 60))]
        texts += rng.sample(texts, k=len(texts) // 2)  # repeated questions, as in real inboxes
        rng.shuffle(texts)
        for cutoff in (CUTOFF, 60.0):
            assert group_texts(texts, cutoff=cutoff) == plain_groups(texts, cutoff=cutoff), texts


def test_the_same_question_asked_many_ways_is_one_group() -> None:
    texts = ["do you sell gift boxes?", "Do you sell gift boxes??", "where is my order",
             "do you sell gift boxes?", "Where is my order?"]
    groups = group_texts(texts)
    assert sorted(map(sorted, groups)) == [[0, 1, 3], [2, 4]]


def test_max_keys_groups_only_the_newest_texts_up_to_that_many_different_keys() -> None:
    texts = ["do you sell gift boxes?", "where is my order", "Do you sell gift boxes??",
             "can I pay by invoice", "where is my order?", "do you ship to Canada"]
    # Keys: gift boxes, order, (gift boxes), invoice <- the third distinct key stops it.
    assert group_texts(texts, max_keys=2) == plain_groups(texts[:3])
    assert group_texts(texts, max_keys=3) == plain_groups(texts[:5])
    assert group_texts(texts, max_keys=100) == plain_groups(texts)
