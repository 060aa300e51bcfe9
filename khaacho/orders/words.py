"""The vocabulary of order messages: units, fillers, joining words, negations, question words."""

from __future__ import annotations


def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


UNITS = _wordset("kg g litre ml packet piece bottle crate bag dozen box carton tray tin")

UNIT_WORDS = {
    "kg": "kg kgs kilo kilos kilogram kilograms kilogramme kgm केजी किलो किलोग्राम",
    "g": "g gm gms gram grams gramme gr grm ग्राम",
    "litre": "l lt ltr ltrs litre litres liter liters lit लिटर लि",
    "ml": "ml mls millilitre milliliter एमएल",
    "packet": "packet packets pkt pkts pk pck pckt pack packs pkg paket poka प्याकेट पाकेट पोका",
    "piece": "piece pieces pc pcs pis nos wota ota vota wata ta gota वटा ओटा टा गोटा पिस",
    "bottle": "bottle bottles btl btls botal bottal बोतल",
    "crate": "crate crates kret क्रेट",
    "bag": "bag bags bora boras bori sack sacks बोरा बोरी",
    "dozen": "dozen dozens doz dz darjan darjon दर्जन",
    "box": "box boxes baksa dabba बाकस डब्बा",
    "carton": "carton cartons ctn ctns cartoon kartun कार्टुन कार्टन",
    "tray": "tray trays ट्रे",
    "tin": "tin tins टिन",
    "pau": "pau paau pao pav पाउ",  # a quarter kilo, read as 0.25 kg
}
UNIT = {word: unit for unit, words in UNIT_WORDS.items() for word in words.split()}
TWO_WORD_UNITS = {("k", "g"): "kg", ("के", "जी"): "kg", ("kilo", "gram"): "kg", ("m", "l"): "ml"}

ONE = frozenset({"a", "an"})
TIMES = frozenset({"x", "×"})
MEASURED = frozenset({"kg", "g", "litre", "ml"})
CURRENCY = frozenset({"rs", "rupees", "rupee", "rupiya", "npr", "रु", "रुपैयाँ", "रुपैया"})

FILLERS = _wordset(
    """
    please pls plz plss kindly send sent need needed want order orders give add bring deliver delivery
    i me we us my our you your the a an some sir madam dear hello hi hey namaste namaskar thanks thank
    thankyou ty ok okay also more following items item today tomorrow asap urgent required require for
    to can could would will have has get good morning evening night bye and or new list
    dai daju didi bhai bahini sathi hajur ji malai hami hamilai mero hamro lai chahiyo chaiyo chahiyeko
    chahincha chaincha chainxa pathaidinus pathaidinu pathaidinuhos pathaunu pathaunus pathau pathaideu
    dinus dinu dinuhos dinuhola deu dinos ani pani ni hai la ta aaja aja bholi ahile kripaya dhanyabad
    dhanyabaad dhanyawad hola cha chha xa ho garnus garnu garidinus lyaidinus lyaunu lyaunus thap thapnu
    thapidinus ma samma pachi bhanda agadi aba aile ahile matra only just lagi ready rakhnu before after
    bihana beluka diuso raati bhitra
    मलाई हामीलाई चाहियो चाहिन्छ पठाइदिनुस पठाइदिनुहोस् पठाउनुस पठाउनु दिनुस दिनुहोस् दाइ दाजु दिदी
    भाइ नमस्ते नमस्कार धन्यवाद कृपया पनि अनि है हजुर आज भोलि छ हो बिहान बेलुका भित्र सम्म
    """
)
# Joining words are part of names like "tori ko tel": only dropped at the edges of a name.
LINKERS = frozenset({"ko", "ka", "ki", "of", "wala", "wali", "vala", "को", "वाला"})
PRICE_WORDS = _wordset(
    """
    price prices rate rates cost much kati mol daam dam bhau bhaau kimat
    कति भाउ मूल्य दाम मोल
    """
)
QUESTION_WORDS = _wordset(
    """
    what when how why where which who kahile kina kaha kasari k ke
    कहिले किन कहाँ के कसरी
    """
)
TIME_WORDS = frozenset({"baje", "bajey", "bje", "बजे", "am", "pm"})
# Negations that undo the words before them ("tel chahidaina", "wai wai hoina", "नुन नचाहिने")...
NEGATE_BEFORE = _wordset(
    """
    chahidaina chaidaina chahindaina chaindaina chahidain chaidain chahidaena chaidaena chahidena chaidena
    chahiyena chaiyena pardaina pardaena pardena hoina haina hoena nachahine nachaine nachahiyeko
    napathaunu napathaunus napathau napathaidinu napathaidinus nalyaunu nalyaunus
    चाहिँदैन चाहिदैन चाहिंदैन चाहिएन पर्दैन होइन हैन नचाहिने नपठाउनु नपठाउनुस नपठाउनुहोस् नल्याउनु
    """
)
NEGATED_VERBS = ("chah", "chai", "path", "lyau", "चाहि", "पठा")
# ... and those that undo what follows them, or what precedes them at the end of a line ("oil not needed").
NEGATE_AFTER = _wordset("no not dont don without cancel remove skip nahi nahin bina बिना")
CONTAINERS = frozenset({"bag", "box", "carton", "crate", "tin", "bottle", "packet", "tray"})
