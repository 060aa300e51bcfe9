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
