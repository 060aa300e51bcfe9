"""What a short text means in the conversation: a typed answer, a choice, a repeat, a price question."""

from __future__ import annotations

import functools

from khaacho.orders.parser import normalize

CONFIRM, CHANGE, CANCEL = "confirm", "change", "cancel"
TYPED = {
    CONFIRM: frozenset({"1", "yes", "ok", "okay", "confirm", "ho", "हो", "हुन्छ", "yes confirm", "ok confirm"}),
    CHANGE: frozenset({"2", "change"}),
    CANCEL: frozenset({"3", "cancel", "radda", "रद्द"}),
}
# "cancel my last order", "order radda garnus": a short message that says cancel and orders nothing.
CANCEL_WORDS = frozenset({"cancel", "radda", "रद्द"})
MAX_CANCEL_WORDS = 6
REPEAT_PHRASES = ("same as last time", "same again", "pahile jastai", "pahile jastei", "पहिले जस्तै",
                  "order again", "repeat order", "repeat last order")
REPEAT_WORDS = frozenset({"उही", "repeat"})
PRICE_WORDS = frozenset({"rate", "price", "prices", "kati", "mulya", "dam", "bhau", "भाउ", "दर", "मूल्य",
                         "कति", "रेट"})
FILLER_WORDS = frozenset({"ko", "of", "what", "is", "the", "ho", "cha", "chha", "k", "ke", "how", "much",
                          "को", "हो", "छ", "के", "aaja", "today", "todays", "s", "please", "ra", "and", "आज"})


@functools.lru_cache(maxsize=64)
def words(text: str | None) -> tuple[str, ...]:
    """The message as lowercase words, ASCII digits, no punctuation.

    Cached: each of the questions below asks it of the same text (a message's text is read once).
    """
    return tuple(normalize(text or "").replace(".", " ").replace("/", " ").split())


def typed_answer(text: str | None) -> str | None:
    """``confirm``, ``change`` or ``cancel`` when the whole message is one of the typed answers."""
    said = " ".join(words(text))
    for answer, forms in TYPED.items():
        if said in forms:
            return answer
    found = said.split()
    if (found and len(found) <= MAX_CANCEL_WORDS and CANCEL_WORDS.intersection(found)
            and not any(word.isdigit() for word in found)):
        return CANCEL
    return None


def choice_number(text: str | None) -> int | None:
    """The number of a choice when the whole message is one (0 is "none of these")."""
    found = words(text)
    return int(found[0]) if len(found) == 1 and found[0].isdigit() and len(found[0]) <= 2 else None


def is_repeat(text: str | None) -> bool:
    """Whether the message asks for the last order again."""
    found = words(text)
    said = " ".join(found)
    if any(phrase in said for phrase in REPEAT_PHRASES):
        return True
    return len(found) <= 2 and bool(REPEAT_WORDS & set(found))


def price_subjects(text: str | None) -> list[str] | None:
    """The product names a price question asks about; None when the message is no price question."""
    found = words(text)
    if not PRICE_WORDS.intersection(found) or any(word[0].isdigit() for word in found):
        return None
    names, current = [], []
    for word in found:
        if word in PRICE_WORDS or word in FILLER_WORDS:
            if current:
                names.append(" ".join(current))
                current = []
            continue
        current.append(word)
    if current:
        names.append(" ".join(current))
    return names
