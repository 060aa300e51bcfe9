"""The order parser alone: text in, (name, quantity, unit) lines out; no catalog, no app."""

import pytest

from khaacho.orders.parser import ParsedLine, normalize, parse_order


def only_line(text: str) -> ParsedLine:
    lines = parse_order(text)
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize(
    ("text", "quantity", "unit"),
    [
        ("5 kg chini", 5, "kg"),
        ("5kg chini", 5, "kg"),
        ("5 kgs chini", 5, "kg"),
        ("5 kilo chini", 5, "kg"),
        ("5 K.G. chini", 5, "kg"),
        ("५ केजी चिनी", 5, "kg"),
        ("५ किलो चिनी", 5, "kg"),
        ("250 g besar", 250, "g"),
        ("250g besar", 250, "g"),
        ("250 gm besar", 250, "g"),
        ("250 gram besar", 250, "g"),
        ("२५० ग्राम बेसार", 250, "g"),
        ("2 l tel", 2, "litre"),
        ("2ltr tel", 2, "litre"),
        ("2 litre tel", 2, "litre"),
        ("2 liters tel", 2, "litre"),
        ("२ लिटर तेल", 2, "litre"),
        ("500 ml ghee", 500, "ml"),
        ("2 packet chiya", 2, "packet"),
        ("2 pkt chiya", 2, "packet"),
        ("2 pack chiya", 2, "packet"),
        ("२ प्याकेट चिया", 2, "packet"),
        ("6 piece sabun", 6, "piece"),
        ("6 pcs sabun", 6, "piece"),
        ("6 wota sabun", 6, "piece"),
        ("६ वटा साबुन", 6, "piece"),
        ("24 bottle coke", 24, "bottle"),
        ("24 btl coke", 24, "bottle"),
        ("2 crate coke", 2, "crate"),
        ("2 bag chamal", 2, "bag"),
        ("2 bora chamal", 2, "bag"),
        ("1 carton rara", 1, "carton"),
        ("1 cartoon rara", 1, "carton"),
        ("2 dozen anda", 2, "dozen"),
        ("2 darjan anda", 2, "dozen"),
        ("२ दर्जन अण्डा", 2, "dozen"),
        ("dozen anda", 1, "dozen"),
        ("1 tin tori ko tel", 1, "tin"),
    ],
)
def test_units_and_their_spellings_are_recognised(text, quantity, unit):
    line = only_line(text)
    assert (line.quantity, line.unit) == (quantity, unit)


@pytest.mark.parametrize(
    ("text", "quantity", "unit"),
    [
        ("१.५ केजी चिनी", 1.5, "kg"),
        ("sugar 2.5 kg", 2.5, "kg"),
        ("half kg besar", 0.5, "kg"),
        ("aadha kg jeera", 0.5, "kg"),
        ("आधा केजी जीरा", 0.5, "kg"),
        ("aadha darjan anda", 0.5, "dozen"),
        ("1/2 kg besar", 0.5, "kg"),
        ("½ kg besar", 0.5, "kg"),
        ("dedh kg ghiu", 1.5, "kg"),
        ("ek packet chiya", 1, "packet"),
        ("dui kg besar", 2, "kg"),
        ("two dozen eggs", 2, "dozen"),
        ("tin kg chini", 3, "kg"),
        ("a dozen eggs", 1, "dozen"),
    ],
)
def test_decimals_fractions_and_number_words_are_quantities(text, quantity, unit):
    line = only_line(text)
    assert line.quantity == pytest.approx(quantity)
    assert line.unit == unit


@pytest.mark.parametrize("text", ["5 kg chini", "chini 5 kg", "chini ko 5 kg", "chini: 5 kg", "chini=5kg"])
def test_quantity_is_read_before_or_after_the_name(text):
    line = only_line(text)
    assert (line.name, line.quantity, line.unit) == ("chini", 5, "kg")


@pytest.mark.parametrize(
    ("text", "name", "quantity", "unit"),
    [
        ("Noodles x 30", "noodles", 30, None),
        ("wai wai x24", "wai wai", 24, None),
        ("3x coke", "coke", 3, None),
        ("coke ×6", "coke", 6, None),
        ("salt - 10 pkt", "salt", 10, "packet"),
        ("soap - 6 pcs", "soap", 6, "piece"),
        ("pauroti 5", "pauroti", 5, None),
    ],
)
def test_multiplier_and_dash_forms(text, name, quantity, unit):
    line = only_line(text)
    assert (line.name, line.quantity, line.unit) == (name, quantity, unit)


@pytest.mark.parametrize(
    ("text", "pack", "quantity", "unit"),
    [
        ("sunflower oil 1 ltr x 12", (1, "litre"), 12, None),
        ("2 x 5kg atta", (5, "kg"), 2, None),
        ("5kg*2 chini", (5, "kg"), 2, None),
        ("Coke 1.5 ltr 6 bottle", (1.5, "litre"), 6, "bottle"),
        ("5 ltr sunflower oil 2 wota", (5, "litre"), 2, "piece"),
    ],
)
def test_pack_size_times_count_keeps_both(text, pack, quantity, unit):
    line = only_line(text)
    assert (line.pack, line.quantity, line.unit) == (pack, quantity, unit)


@pytest.mark.parametrize(
    "text",
    [
        "1) basmati 5kg\n2) sunflower oil 2 ltr",
        "1. basmati 5kg\n2. sunflower oil 2 ltr",
        "1 - basmati 5kg\n2 - sunflower oil 2 ltr",
        "- basmati 5kg\n- sunflower oil 2 ltr",
        "१) basmati 5kg\n२) sunflower oil 2 ltr",
        "1️⃣ basmati 5kg 2️⃣ sunflower oil 2 ltr",
        "1 basmati 5kg\n2 sunflower oil 2 ltr",
    ],
)
def test_list_numbering_is_not_a_quantity(text):
    lines = parse_order(text)
    assert [(line.name, line.quantity, line.unit) for line in lines] == [
        ("basmati", 5, "kg"),
        ("sunflower oil", 2, "litre"),
    ]


def test_a_decimal_at_line_start_is_a_quantity_not_numbering():
    assert only_line("1.5 kg badam").quantity == 1.5


def test_a_dash_after_a_number_is_a_quantity_when_nothing_else_is():
    assert only_line("3 - coke").quantity == 3


@pytest.mark.parametrize(
    "text",
    [
        "10 kg chini, 5 kg dal",
        "10 kg chini\n5 kg dal",
        "10 kg chini and 5 kg dal",
        "10 kg chini ra 5 kg dal",
        "10 kg chini ani 5 kg dal",
        "१० केजी चिनी र ५ केजी दाल",
        "10 kg chini; 5 kg dal",
        "10 kg chini + 5 kg dal",
        "10 kg chini & 5 kg dal",
        "chini 10 kg dal 5 kg",
        "10 kg chini 5 kg dal",
        "chini 10kg,dal 5kg",
    ],
)
def test_separators_split_items(text):
    lines = parse_order(text)
    assert [(line.quantity, line.unit) for line in lines] == [(10, "kg"), (5, "kg")]


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("pls send 2 dozen eggs", "eggs"),
        ("malai 5 kg chini chahiyo", "chini"),
        ("Namaste dai, 5 kg chini pathaidinus", "chini"),
        ("मलाई ३ लिटर तोरीको तेल चाहियो", "तोरीको तेल"),
        ("2 litre tori ko tel", "tori ko tel"),
        ("Dear sir, please send following items: Sugar 25 kg", "sugar"),
        ("need 10kg of sugar", "sugar"),
        ("add 1 carton rara", "rara"),
    ],
)
def test_fillers_are_not_product_words(text, name):
    assert only_line(text).name == name


@pytest.mark.parametrize(
    "text",
    [
        "namaste, aaja pasal kati baje khulcha?",
        "what is the price of sugar?",
        "sugar kati ho?",
        "rate of basmati rice please",
        "नमस्ते, चिनीको भाउ कति छ?",
        "Hello, how are you dai?",
        "do you have rara noodles?",
        "mero order kahile aauncha?",
        "dai bholi 3 baje aaunus hai",
        "ok thank you dai",
        "Good morning dai 🙏",
        "thank you 🙏",
        "?",
        "",
        "   ",
        "🙏🙏",
    ],
)
def test_greetings_and_questions_give_no_lines(text):
    assert parse_order(text) == []


def test_an_order_next_to_a_price_question_keeps_the_order():
    assert [(line.name, line.quantity) for line in parse_order("chini 5 kg chahiyo, kati parcha?")] == [
        ("chini", 5)
    ]


def test_emoji_are_harmless():
    assert parse_order("5 kg chini 🙏😊, 2 packet wai wai 🍜") == [
        ParsedLine("5 kg chini 🙏😊", "chini", 5, "kg"),
        ParsedLine("2 packet wai wai 🍜", "wai wai", 2, "packet"),
    ]


def test_prices_and_phone_numbers_are_not_quantities():
    assert only_line("chini 5 kg 110 rs").quantity == 5
    assert only_line("chini 5 kg rs 110").quantity == 5
    assert only_line("chini 5 kg 9841234567").quantity == 5


def test_a_line_without_a_quantity_keeps_its_name():
    assert only_line("sugar pathaidinus") == ParsedLine("sugar pathaidinus", "sugar", None, None)


def test_a_quantity_with_no_name_is_not_a_line():
    assert parse_order("5 kg") == []


def test_text_is_the_segment_as_written():
    assert [line.text for line in parse_order("salt - 10 pkt\nSoap - 6 pcs")] == [
        "salt - 10 pkt",
        "Soap - 6 pcs",
    ]


def test_normalize_folds_case_digits_and_punctuation():
    assert normalize("Wai-Wai ५kg, 1.5ltr!") == "wai wai 5 kg 1.5 ltr"


# --- Nepali number and fraction words ---------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "quantity"),
    [
        ("ek kg chini", 1), ("dui kg chini", 2), ("tin kg chini", 3), ("char kg chini", 4),
        ("panch kg chini", 5), ("chha kg chini", 6), ("saat kg chini", 7), ("aath kg chini", 8),
        ("nau kg chini", 9), ("das kg chini", 10), ("barha kg chini", 12), ("bis kg chini", 20),
        ("pachis kg chini", 25), ("chalis kg chini", 40), ("pachas kg chini", 50),
        ("पाँच किलो चिनी", 5), ("बीस किलो चिनी", 20), ("पच्चीस किलो चिनी", 25), ("चिनी पचास किलो", 50),
        ("paanch sau gram jeera", 500), ("dui sau gram besar", 200),
    ],
)  # fmt: skip
def test_nepali_number_words_are_quantities(text, quantity):
    assert only_line(text).quantity == quantity


@pytest.mark.parametrize(
    ("text", "quantity", "unit"),
    [
        ("sawa kg besar", 1.25, "kg"),
        ("sawa dui kg besar", 2.25, "kg"),
        ("sawa 2 kg besar", 2.25, "kg"),
        ("dedh litre dudh", 1.5, "litre"),
        ("dhai kg chini", 2.5, "kg"),
        ("saadhe 3 kg chana", 3.5, "kg"),
        ("saadhe tin kg chana", 3.5, "kg"),
        ("aadha kg dhaniya", 0.5, "kg"),
        ("paune kg suji", 0.75, "kg"),
        ("paune 2 kg suji", 1.75, "kg"),
        ("सवा किलो बेसार", 1.25, "kg"),
        ("डेढ लिटर घिउ", 1.5, "litre"),
        ("अढाई लिटर तेल", 2.5, "litre"),
        ("साढे ३ केजी चना", 3.5, "kg"),
    ],
)
def test_nepali_fraction_words_are_quantities(text, quantity, unit):
    line = only_line(text)
    assert (line.quantity, line.unit) == (pytest.approx(quantity), unit)


@pytest.mark.parametrize(
    ("text", "quantity"),
    [("ek pau besar", 0.25), ("jeera 2 pau", 0.5), ("तीन पाउ जीरा", 0.75), ("pau kilo besar", 0.25)],
)
def test_pau_is_a_quarter_kilo(text, quantity):
    line = only_line(text)
    assert (line.quantity, line.unit) == (pytest.approx(quantity), "kg")


# --- counters and packs -----------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "quantity"),
    [("12 ota sabun", 12), ("6 wata colgate", 6), ("कोक १२ वटा", 12), ("फ्यान्टा ६ ओटा", 6), ("duita salai", 2),
     ("दुईवटा कोक", 2), ("एउटा साबुन", 1), ("2 ta coke", 2)],
)  # fmt: skip
def test_counters_count_pieces(text, quantity):
    line = only_line(text)
    assert (line.quantity, line.unit) == (quantity, "piece")


@pytest.mark.parametrize(
    ("text", "pack", "quantity", "unit"),
    [
        ("coke 1 litre ko 2 ota", (1, "litre"), 2, "piece"),
        ("फ्यान्टा १ लिटरको ६ वटा", (1, "litre"), 6, "piece"),
        ("chini 1 kg ko 10 packet", (1, "kg"), 10, "packet"),
        ("chamal 25 kg ko bora", (25, "kg"), 1, "bag"),
        ("25 kg ko bora chini 2 ota", (25, "kg"), 2, "bag"),
        ("1 bora chamal (25 kg)", (25, "kg"), 1, "bag"),
    ],
)
def test_a_size_then_a_count_is_a_count_of_packs_of_that_size(text, pack, quantity, unit):
    line = only_line(text)
    assert (line.pack, line.quantity, line.unit) == (pack, quantity, unit)


def test_a_sack_nobody_sized_is_not_given_a_size():
    assert only_line("chini 2 bora") == ParsedLine("chini 2 bora", "chini", 2, "bag")


def test_a_unit_written_before_its_number_is_read():
    assert (only_line("waiwai ko carton 2").quantity, only_line("chini kg 5").unit) == (2, "kg")


# --- negations --------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "text",
    ["tel chahidaina", "wai wai hoina", "chini pardaina", "नुन नचाहिने", "तेल चाहिँदैन", "no oil",
     "oil not needed", "don't send oil", "skip the sugar", "tel na chahine"],
)  # fmt: skip
def test_a_negated_item_gives_no_line(text):
    assert parse_order(text) == []


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("wai wai hoina rara 10 packet", ["rara"]),
        ("chini 5 kg tel chahidaina", ["chini"]),
        ("5 kg chini, no salt", ["chini"]),
        ("5 kg chini chahiyo tara tel chahidaina", ["chini"]),
        ("tel chaidaina dai, 5 kg chamal", ["chamal"]),
    ],
)
def test_a_negation_removes_only_what_it_negates(text, names):
    assert [line.name for line in parse_order(text)] == names


# --- numbers that are not quantities ----------------------------------------------------------

@pytest.mark.parametrize(
    "text",
    [
        "order #1234: chini 5 kg",
        "order no. 23 ma 5 kg chini thapnu",
        "invoice no 778 ko, 5 kg chini",
        "5 baje samma 5 kg chini pathaunu",
        "bholi bihana ८ बजे 5 kg chini",
        "10:30 bhitra 5 kg chini",
        "5 pm: chini 5 kg",
        "9851234567 ma phone garnu, 5 kg chini",
        "+977-9841234567, 5 kg chini",
        "call 01-4412345, chini 5 kg",
        "chini 5 kg @ 110",
        "chini 110/- 5 kg",
    ],
)
def test_order_numbers_times_phones_and_prices_are_not_quantities(text):
    lines = parse_order(text)
    assert [(line.name, line.quantity, line.unit) for line in lines if line.quantity] == [("chini", 5, "kg")]


@pytest.mark.parametrize("text", ["order #1234 kahile aaucha?", "9841234567", "bholi 5 baje aaunus"])
def test_a_message_of_only_references_times_or_phones_gives_no_lines(text):
    assert parse_order(text) == []


@pytest.mark.parametrize(
    "text",
    ["(1) basmati 5kg (2) sunflower oil 2 ltr", "a) basmati 5kg\nb) sunflower oil 2 ltr",
     "1) basmati 5kg 2) sunflower oil 2 ltr"],
)  # fmt: skip
def test_list_markers_inside_a_line_separate_items(text):
    lines = parse_order(text)
    assert [(line.name, line.quantity) for line in lines] == [("basmati", 5), ("sunflower oil", 2)]
