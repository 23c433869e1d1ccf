"""Group unanswered questions that say the same thing (pure; rapidfuzz + our normaliser).

Editors work through groups, not single messages: "do you sell gift boxes?",
"Do you sell giftboxes??" and "do u have gift boxes" are one missing FAQ entry. Each
message is reduced to its sorted matching terms (`faq.normalise.terms`: stemmed, stop
words and shorthand handled, Korean particles stripped) and joins the first group whose
first message scores at least `CUTOFF` with rapidfuzz's token-set ratio on those terms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rapidfuzz import fuzz, process

from faq.normalise import fold, terms

# token_set_ratio on term strings: 100 when one message's terms contain the other's,
# ~80 for one differing short term out of three; below that, different questions
# ("where is my refund" / "where is my order" score ~70) stay apart.
CUTOFF = 80.0


@dataclass
class Group:
    """Messages that ask the same thing; `members` are indexes into the input, the
    first one (the newest) stands for the group."""

    key: str
    members: list[int] = field(default_factory=list)


def key_of(text: str) -> str:
    """The comparison key of a message: its distinct terms, sorted."""
    found = sorted(set(terms(text)))
    return " ".join(found) if found else fold(text)


def group_texts(texts: Sequence[str], *, cutoff: float = CUTOFF) -> list[list[int]]:
    """Cluster `texts` (newest first): lists of indexes, biggest group first, ties by
    the newest message."""
    groups: list[Group] = []
    keys: list[str] = []
    for index, text in enumerate(texts):
        key = key_of(text)
        best = process.extractOne(key, keys, scorer=fuzz.token_set_ratio, processor=None,
                                  score_cutoff=cutoff) if keys else None
        if best is None:
            groups.append(Group(key, [index]))
            keys.append(key)
        else:
            groups[best[2]].members.append(index)
    ordered = sorted(groups, key=lambda g: (-len(g.members), g.members[0]))
    return [g.members for g in ordered]
