"""The product catalog in the database: CSV import and the matcher built from it."""

from __future__ import annotations

from pathlib import Path
from typing import IO

from sqlalchemy import func, select

from khaacho.extensions import db
from khaacho.models import Product
from khaacho.orders.catalog_csv import load_catalog_rows
from khaacho.orders.matcher import Catalog

_cached: tuple[tuple, Catalog] | None = None
_products = Product.__table__
# The catalog's version: the newest product and the newest change, each the end of an index (the
# primary key, ``ix_products_updated_at``), so reading it costs the same for 50 products or 50,000.
# An import moves it (new rows, ``updated_at`` stamped on change); so does a change made with SQL
# that sets ``updated_at``, as docs/data.md asks. As scalar subqueries, so a statement that runs
# anyway (the worker's claim) can return it alongside.
VERSION_COLUMNS = (
    select(func.max(_products.c.id)).scalar_subquery().label("catalog_newest"),
    select(func.max(_products.c.updated_at)).scalar_subquery().label("catalog_changed"),
)
_VERSION = select(*VERSION_COLUMNS)


def import_catalog(source: str | Path | IO[str]) -> tuple[int, int]:
    """Upsert products by SKU in one transaction; returns (created, updated).

    The whole file is validated first (``CatalogError`` lists every bad row), so a
    file with one bad row changes nothing.
    """
    rows = load_catalog_rows(source)
    skus = [row["sku"] for row in rows]
    existing = {p.sku: p for p in db.session.scalars(select(Product).where(Product.sku.in_(skus)))}
    created = updated = 0
    for row in rows:
        product = existing.get(row["sku"])
        if product is None:
            db.session.add(Product(active=True, **row))
            created += 1
            continue
        for field, value in row.items():
            setattr(product, field, value)
        product.active = True
        updated += 1
    db.session.commit()
    return created, updated


def active_catalog(version: tuple | None = None) -> Catalog:
    """The matcher over active products, rebuilt only when the catalog changed.

    ``version`` is the catalog's version as :data:`VERSION_COLUMNS` read it in this transaction;
    without it, it is read here.
    """
    global _cached
    if version is None:
        version = tuple(db.session.execute(_VERSION).one())
    if _cached is None or _cached[0] != version:
        products = db.session.scalars(select(Product).where(Product.active.is_(True))).all()
        _cached = (version, Catalog(products))
    return _cached[1]
