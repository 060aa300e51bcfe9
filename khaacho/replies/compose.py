"""The text of help, not-found and acknowledgement replies, in English and romanized Nepali."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

EXAMPLES = ("chini 5 kg", "mansuli chamal 25 kg", "sunflower oil 2 litre")
SHORTENED = "… (shortened / chhoto gariyo)"


@dataclass(frozen=True)
class ReplyLine:
    """One order line as the shopkeeper sees it; ``price`` is None when it cannot be priced."""

    text: str
    name: str | None
    quantity: Decimal
    unit: str | None
    price: Decimal | None

    @property
    def amount(self) -> Decimal | None:
        return None if self.price is None else (self.quantity * self.price).quantize(Decimal("0.01"))


@dataclass(frozen=True)
class Repriced:
    """A cart line whose price in the shop's cart differs from today's catalog price."""

    name: str
    cart_price: Decimal
    price: Decimal


def money(amount: Decimal) -> str:
    """``NPR 1,234.50``."""
    return f"NPR {amount:,.2f}"


def number(quantity: Decimal) -> str:
    """A quantity without trailing zeros: 2, 0.5, 1.25."""
    text = f"{quantity:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _unclear_block(entries: list[str]) -> list[str]:
    return ["Please check these and send them again with the item name and quantity:",
            "Yo bujhiyena, kripaya saman ko naam ra matra sahit feri pathaunuhos:",
            *(f"• {entry}" for entry in entries)]


def not_found(texts: list[str]) -> str:
    """No line matched a product: say which lines, ask again, show how to order."""
    out = ["Sorry, we could not find these in our catalog. / Maaf garnus, yo saman hamro suchi ma bhetiyena.",
           *_unclear_block([f'"{text}"' for text in texts])]
    return "\n".join(out) + "\n\n" + help_text()


def cart_notes(unknown: list[str], repriced: list[Repriced]) -> str:
    """What of a cart did not go into the order as it was: SKUs we do not sell, prices that changed."""
    out = []
    if unknown:
        out += ["", "Not in our catalog, left out / Hamro suchi ma chhaina, order ma rakhiyena:",
                *(f"• {sku}" for sku in unknown)]
    if repriced:
        out += ["", "Priced at today's rate / Aajako rate ma:",
                *(f"• {r.name}: {money(r.price)} (cart showed {money(r.cart_price)})" for r in repriced)]
    return "\n".join(out)


def cart_not_found(unknown: list[str]) -> str:
    """A cart with nothing we sell: list what it held and show how to order."""
    return "\n".join(["Sorry, the items in your cart are not in our catalog. / "
                      "Maaf garnus, cart ka saman hamro suchi ma bhetiyena.",
                      *(f"• {sku}" for sku in unknown)]) + "\n\n" + help_text()


def location_saved(label: str | None) -> str:
    """The acknowledgement of a shared location."""
    place = f": {label}" if label else "."
    return "\n".join([f"Thank you! We saved this as your delivery location{place}",
                      "Dhanyabad! Yo thegana delivery ko lagi rakhyau."])


def media_received(name: str) -> str:
    """The acknowledgement of a photo, voice note or document: a person will look at it."""
    return "\n".join([f"Thank you, we received your {name}. A person will look at it and reply soon.",
                      f"Dhanyabad, tapaiko {name} paayau. Hamro manchhe le herera chhitto jawaf dinchha."])


def help_text() -> str:
    """How to order, for a message with no items in it."""
    return "\n".join([
        "Namaste! To order, send one item per line with its quantity, for example:",
        "Order garna ek line ma ek saman ra tesko matra lekhnuhos, jastai:",
        *EXAMPLES,
        "We reply with your order and its total. / Hami order ra jamma rakam pathaunchhau.",
    ])


def shorten(text: str, limit: int) -> str:
    """``text`` cut at a line break to fit ``limit`` characters, saying that it was cut."""
    if len(text) <= limit:
        return text
    cut = text.rfind("\n", 0, limit - len(SHORTENED) - 1)
    return text[:cut if cut > 0 else limit - len(SHORTENED) - 1] + "\n" + SHORTENED
