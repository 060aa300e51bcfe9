"""Devanagari to romanized Nepali, and the loose phonetic key both scripts are compared in.

``रारा`` and ``rara`` must meet, and so must ``कोक`` and ``coke``, without a hand-made list per
product: Devanagari is transliterated letter by letter (with Nepali's silent inherent vowels
dropped), then both spellings are folded to a key that forgets the distinctions romanized
Nepali writes inconsistently (aspiration, vowel length, doubled letters, c/k, v/w, a final a/e/o).
"""

from __future__ import annotations

import re
import unicodedata

_CONSONANTS = {
    "क": "k", "ख": "kh", "ग": "g", "घ": "gh", "ङ": "ng", "च": "ch", "छ": "chh", "ज": "j", "झ": "jh",
    "ञ": "n", "ट": "t", "ठ": "th", "ड": "d", "ढ": "dh", "ण": "n", "त": "t", "थ": "th", "द": "d",
    "ध": "dh", "न": "n", "प": "p", "फ": "ph", "ब": "b", "भ": "bh", "म": "m", "य": "y", "र": "r",
    "ल": "l", "व": "w", "श": "sh", "ष": "sh", "स": "s", "ह": "h", "ळ": "l",
}  # fmt: skip
_NUKTA_FORMS = {"क": "k", "ख": "kh", "ग": "g", "ज": "z", "ड": "r", "ढ": "rh", "फ": "f", "य": "y"}
_VOWELS = {
    "अ": "a", "आ": "aa", "इ": "i", "ई": "ii", "उ": "u", "ऊ": "uu", "ऋ": "ri", "ए": "e", "ऐ": "ai",
    "ओ": "o", "औ": "au", "ऍ": "e", "ऑ": "o",
}  # fmt: skip
_SIGNS = {
    "ा": "aa", "ि": "i", "ी": "ii", "ु": "u", "ू": "uu", "ृ": "ri", "े": "e", "ै": "ai", "ो": "o",
    "ौ": "au", "ॅ": "e", "ॉ": "o",
}  # fmt: skip
_VIRAMA, _NUKTA, _ANUSVARA = "्", "़", "ं"
_SILENT = frozenset("ँः\u200c\u200d")


def is_devanagari(word: str) -> bool:
    """Whether the word holds any Devanagari letter."""
    return any("\u0900" <= char <= "\u097f" for char in word)


def _syllables(word: str) -> list[list]:
    """[consonant, vowel, inherent] per syllable; ``inherent`` marks a vowel that Nepali may leave silent."""
    out: list[list] = []
    for char in unicodedata.normalize("NFD", word):
        if char in _CONSONANTS:
            out.append([_CONSONANTS[char], "a", True])
        elif char == _NUKTA and out and out[-1][2]:
            base = next((k for k, v in _CONSONANTS.items() if v == out[-1][0]), "")
            out[-1][0] = _NUKTA_FORMS.get(base, out[-1][0])
        elif char in _SIGNS and out:
            out[-1][1:] = [_SIGNS[char], False]
        elif char == _VIRAMA and out:
            out[-1][1:] = ["", False]
        elif char in _VOWELS:
            out.append(["", _VOWELS[char], False])
        elif char == _ANUSVARA and out:
            out[-1][1:] = [out[-1][1] + "n", False]
        elif char not in _SILENT:
            out.append([char, "", False])
    return out


def to_latin(word: str) -> str:
    """A Devanagari word in romanized Nepali (``भटमास`` -> ``bhatmaas``); other text is returned as is."""
    if not is_devanagari(word):
        return word
    syllables = _syllables(word)
    # The inherent vowel is silent at the end of a word, and between a vowel and a consonant+vowel:
    # भटमास is "bhatmas", not "bhatamas"; चामल keeps its "a" ("chaamal").
    if len(syllables) > 1 and syllables[-1][2]:
        syllables[-1][1] = ""
    for i in range(1, len(syllables) - 1):
        following = syllables[i + 1]
        if syllables[i][2] and syllables[i - 1][1] and following[0] and following[1]:
            syllables[i][1] = ""
    return "".join(consonant + vowel for consonant, vowel, _ in syllables)


_KEY_STEPS = (
    (re.compile(r"ph"), "f"),
    (re.compile(r"sh"), "s"),
    (re.compile(r"ck"), "k"),
    (re.compile(r"c(?=[eiy])"), "s"),
    (re.compile(r"c(?!h)"), "k"),
    (re.compile(r"chh?"), "c"),
    (re.compile(r"([bdgjkpt])h"), r"\1"),
    (re.compile(r"v"), "w"),
    (re.compile(r"z"), "j"),
    (re.compile(r"q"), "k"),
    (re.compile(r"x"), "ks"),
    (re.compile(r"ee"), "i"),
    (re.compile(r"oo"), "u"),
    (re.compile(r"(.)\1+"), r"\1"),
    # A final a/e/o is dropped: "maha"/"मह", "coke"/"कोक", and Nepali adjectives "kalo"/"kala".
    (re.compile(r"(?<=[^aeiou])[aeo]$"), ""),
)


def phonetic_key(word: str) -> str:
    """The loose key of one word, the same for ``chini``/``cheeni``/``चिनी`` and ``coke``/``कोक``."""
    word = to_latin(word).lower()
    if not word.isascii() or not word.isalpha():
        return word
    for pattern, replacement in _KEY_STEPS:
        word = pattern.sub(replacement, word)
    return word
