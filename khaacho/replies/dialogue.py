"""What the conversation says, in the shop's script: ``ne`` (Devanagari Nepali) or ``en``.

``en`` is English with romanized Nepali, as the rest of the replies. Button and row titles keep
WhatsApp's limits (button ≤ 20 characters, row ≤ 24, description ≤ 72).
"""

from __future__ import annotations

from decimal import Decimal

from khaacho.orders.transliterate import is_devanagari
from khaacho.replies.compose import ReplyLine, money, number

EN, NE = "en", "ne"
BUTTON_TITLE, ROW_TITLE, ROW_DESCRIPTION = 20, 24, 72

_TEXT = {
    EN: {
        "pending": "Order #{n}{v}: please check and confirm / kripaya herera pakka garnus",
        "current": "Your order has changed since; this is the current one. / Order badliyo, yo nayaa ho.",
        "total": "Total / Jamma: {total}",
        "tap": "Tap Confirm, Change or Cancel. / Thichnus: Confirm, Change wa Cancel.",
        "typed": "Reply 1 to confirm, 2 to change, 3 to cancel.\n1 = pakka, 2 = badalne, 3 = radda",
        "left_out": "Not found, left out / Bhetiyena, order ma rakhiyena:",
        "ask": 'Order #{n}: which one do you mean by "{line}"? / "{line}" ma kun chahiyo?',
        "ask_tap": "Choose from the list. / Suchi bata chhannus.",
        "ask_typed": "Reply with the number. / Number pathaunus.",
        "none_of_these": "None of these",
        "none_about": "leave this line out / yo line hataunus",
        "choose": "Choose / Chhannus",
        "confirmed": "Order #{n} is confirmed, thank you! Total {total}. We will deliver soon. / "
                     "Order #{n} pakka bhayo, dhanyabad! Chhittai pathaunchhau.",
        "cancelled": "Order #{n} is cancelled. / Order #{n} radda gariyo.",
        "expired": "Order #{n} was not confirmed within {hours} hours, so it has expired. Send your order "
                   "again any time. / Order #{n} samaya bhitra pakka nabhayeko le radda bhayo.",
        "change": "Order #{n}: what should we change? Send the items to add or change, "
                  "e.g. \"chini 10 kg\". / Ke badalne? Thapne wa badalne saman pathaunus.",
        "nothing_pending": "You have no order waiting for confirmation. / Pakka garna baki order chhaina.",
        "nothing_to_cancel": "You have no order that can still be cancelled. / "
                             "Radda garna milne order chhaina.",
        "too_late": "Order #{n} is already {status} and can no longer be cancelled. / "
                    "Order #{n} pahile nai {status}, aba radda garna mildaina.",
        "nothing_left": "Nothing is left in order #{n}, so it is cancelled. / Order #{n} ma kehi baki "
                        "chhaina, radda gariyo.",
        "no_last_order": "We found no earlier order to repeat. Send your items, e.g. \"chini 5 kg\". / "
                         "Pahile ko order bhetiyena.",
        "prices": "Today's prices / Aaja ko rate:",
        "no_price": "We could not find that in our catalog. / Tyo saman hamro suchi ma bhetiyena.",
        "status": "Order #{n}: {status}",
    },
    NE: {
        "pending": "अर्डर #{n}{v}: कृपया हेरेर पक्का गर्नुहोस्",
        "current": "तपाईंको अर्डर बदलिएको छ; यो नयाँ हो।",
        "total": "जम्मा: {total}",
        "tap": "थिच्नुहोस्: Confirm (पक्का), Change (बदल्ने) वा Cancel (रद्द)।",
        "typed": "पक्का गर्न १, बदल्न २, रद्द गर्न ३ पठाउनुहोस्।",
        "left_out": "भेटिएन, अर्डरमा राखिएन:",
        "ask": 'अर्डर #{n}: "{line}" मा कुन चाहियो?',
        "ask_tap": "सूचीबाट छान्नुहोस्।",
        "ask_typed": "नम्बर पठाउनुहोस्।",
        "none_of_these": "यीमध्ये कुनै होइन",
        "none_about": "यो लाइन हटाउनुहोस्",
        "choose": "छान्नुहोस्",
        "confirmed": "अर्डर #{n} पक्का भयो, धन्यवाद! जम्मा {total}। छिट्टै पठाउँछौँ।",
        "cancelled": "अर्डर #{n} रद्द गरियो।",
        "expired": "अर्डर #{n} {hours} घण्टाभित्र पक्का नभएकाले रद्द भयो। जुनसुकै बेला फेरि अर्डर पठाउनुहोस्।",
        "change": "अर्डर #{n}: के बदल्ने? थप्ने वा बदल्ने सामान पठाउनुहोस्, जस्तै \"चिनी १० केजी\"।",
        "nothing_pending": "पक्का गर्न बाँकी अर्डर छैन।",
        "nothing_to_cancel": "रद्द गर्न मिल्ने अर्डर छैन।",
        "too_late": "अर्डर #{n} पहिले नै {status}, अब रद्द गर्न मिल्दैन।",
        "nothing_left": "अर्डर #{n} मा केही बाँकी छैन, रद्द गरियो।",
        "no_last_order": "दोहोर्‍याउन पहिलेको अर्डर भेटिएन। सामान पठाउनुहोस्, जस्तै \"चिनी ५ केजी\"।",
        "prices": "आजको भाउ:",
        "no_price": "त्यो सामान हाम्रो सूचीमा भेटिएन।",
        "status": "अर्डर #{n}: {status}",
    },
}
STATUS_WORDS = {
    EN: {"pending": "waiting for your confirmation / pakka garna baki",
         "confirmed": "confirmed / pakka bhayo",
         "cancelled": "cancelled / radda bhayo", "expired": "expired / samaya sakiyo",
         "dispatched": "on its way / pathaiyo", "delivered": "delivered / pugyo"},
    NE: {"pending": "पक्का गर्न बाँकी", "confirmed": "पक्का भयो", "cancelled": "रद्द भयो",
         "expired": "समय सकियो", "dispatched": "पठाइयो", "delivered": "पुग्यो"},
}
BUTTONS = {EN: ("Confirm / Pakka", "Change / Badal", "Cancel / Radda"),
           NE: ("Confirm / पक्का", "Change / बदल्ने", "Cancel / रद्द")}
HELP = ("नमस्ते! अर्डर गर्न एक लाइनमा एउटा सामान र त्यसको मात्रा लेख्नुहोस्, जस्तै:\n"
        "चिनी ५ केजी\nमन्सुली चामल २५ केजी\nहामी अर्डर र जम्मा रकम पठाउँछौँ।")


def language_of(text: str | None) -> str:
    """``ne`` for a message written in Devanagari, else ``en``."""
    return NE if text and is_devanagari(text) else EN


def say(language: str, key: str, **values) -> str:
    """One phrase in the language."""
    return _TEXT.get(language, _TEXT[EN])[key].format(**values)


def status_word(language: str, status: str) -> str:
    """An order status as the shop reads it."""
    return STATUS_WORDS.get(language, STATUS_WORDS[EN]).get(status, status)


def item_line(line: ReplyLine) -> str:
    """``• Sugar: 5 kg × NPR 110.00 = NPR 550.00``."""
    quantity = f"{number(line.quantity)} {line.unit}" if line.unit else number(line.quantity)
    return f"• {line.name}: {quantity} × {money(line.price)} = {money(line.amount)}"


def confirmation(language: str, order_number: int, version: int, lines: list[ReplyLine],
                 left_out: list[str], typed: bool, out_of_date: bool = False) -> str:
    """The pending order to confirm: lines, total, what was left out, and how to answer."""
    total = sum((line.amount for line in lines if line.amount is not None), Decimal("0"))
    out = [say(language, "current")] if out_of_date else []
    out += [say(language, "pending", n=order_number, v=f" (v{version})" if version > 1 else ""),
            say(language, "total", total=money(total)), ""]
    out += [item_line(line) for line in lines]
    if left_out:
        out += ["", say(language, "left_out"), *(f"• {text}" for text in left_out)]
    out += ["", say(language, "typed" if typed else "tap")]
    return "\n".join(out)


def clarification(language: str, order_number: int, line_text: str, options: list[tuple[str, str]],
                  typed: bool) -> str:
    """The question about one line; on a typed channel the options are numbered (0 = none of these)."""
    out = [say(language, "ask", n=order_number, line=line_text)]
    if typed:
        out += [f"{n}. {name} ({about})" for n, (name, about) in enumerate(options, start=1)]
        out += [f"0. {say(language, 'none_of_these')}", say(language, "ask_typed")]
    else:
        out.append(say(language, "ask_tap"))
    return "\n".join(out)


def price_list(language: str, priced: list[tuple[str, str, Decimal]]) -> str:
    """Catalog prices: name, unit, price."""
    return "\n".join([say(language, "prices"), *(f"• {name}: {money(price)} / {unit}"
                                                  for name, unit, price in priced)])


def title(text: str, limit: int) -> str:
    """A title cut to WhatsApp's limit."""
    return text if len(text) <= limit else text[:limit - 1] + "…"
