"""Devanagari to romanized Nepali, and the phonetic key both scripts meet in."""

import pytest

from khaacho.orders.transliterate import phonetic_key, to_latin


@pytest.mark.parametrize(
    ("devanagari", "latin"),
    [
        ("रारा", "raaraa"),
        ("कोक", "kok"),
        ("चिनी", "chinii"),
        ("भटमास", "bhatmaas"),  # the inherent vowel between a vowel and a consonant+vowel is silent
        ("चामल", "chaamal"),  # ... but not before a final consonant
        ("मैनबत्ती", "mainbattii"),
        ("प्याज", "pyaaj"),  # a virama joins consonants
        ("गहुँ", "gahu"),  # chandrabindu is not written in romanized Nepali
        ("र", "ra"),  # a one-letter word keeps its vowel
    ],
)
def test_devanagari_is_transliterated_with_silent_inherent_vowels(devanagari, latin):
    assert to_latin(devanagari) == latin


@pytest.mark.parametrize(
    ("one", "other"),
    [("रारा", "rara"), ("कोक", "coke"), ("चिनी", "cheeni"), ("चिनी", "chini"), ("दूध", "doodh"),
     ("घिउ", "ghiu"), ("मायोस", "mayos"), ("मह", "maha"), ("वाइवाइ", "waiwai"), ("कुरकुरे", "kurkure"),
     ("basmathi", "basmati"), ("kalo", "kala"), ("pyaaj", "pyaj")],
)  # fmt: skip
def test_spellings_of_one_word_share_a_phonetic_key(one, other):
    assert phonetic_key(one) == phonetic_key(other)


@pytest.mark.parametrize(
    ("one", "other"), [("chini", "chana"), ("dal", "dahi"), ("tel", "tea"), ("mas", "masu")]
)
def test_different_words_keep_different_keys(one, other):
    assert phonetic_key(one) != phonetic_key(other)


def test_latin_text_is_left_as_written():
    assert to_latin("wai wai") == "wai wai"
