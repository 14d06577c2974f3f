"""Join keys: how values from different sources are recognised as the same key.

Sources write the same BAG identifier in different ways: the 3D BAG and the BAG's own
exchange format as ``NL.IMBAG.Pand.0503100000012345``, PDOK's BAG API and most municipal
registers as the bare 16 digits, and a database column typed as a number as
``503100000012345`` (the leading zero lost). With ``key_format: bag`` all of these normalise
to the 16 digits; with ``text`` a key is its text, trimmed.

A member is asked for keys in every form it may store them in (:func:`key_forms`), since the
hub cannot know which form a source uses before it has seen its data.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

_BAG_ID = re.compile(r"^(?:NL\.IMBAG\.([A-Za-z]+)\.)?(\d{16})$", re.IGNORECASE)

# The object type is digits 5-6 of a BAG identifier (after the 4-digit municipality code);
# the domain names are those of the BAG's own exchange format (``domein="NL.IMBAG.Pand"``).
BAG_DOMAINS = {
    "01": "Verblijfsobject",
    "02": "Ligplaats",
    "03": "Standplaats",
    "10": "Pand",
    "20": "Nummeraanduiding",
    "30": "Openbareruimte",
}


class KeyFormat(StrEnum):
    """How join key values are compared."""

    BAG = "bag"
    """BAG identifiers: ``NL.IMBAG.<Type>.`` prefixes dropped, numbers padded to 16 digits."""
    TEXT = "text"
    """Any other key: compared as text, surrounding white space ignored."""


def normalise_key(value: Any, key_format: KeyFormat) -> str | None:
    """The canonical form of a key value; ``None`` when there is no key (null, empty, a list)."""
    if value is None or isinstance(value, bool | dict | list):
        return None
    if key_format is KeyFormat.BAG:
        if isinstance(value, int):
            return f"{value:016d}" if 0 <= value < 10**16 else str(value)
        text = str(value).strip()
        match = _BAG_ID.match(text)
        return match.group(2) if match else (text or None)
    text = str(value).strip()
    return text or None


def key_forms(key: str, key_format: KeyFormat, field_type: str | None) -> list[Any]:
    """The values a member may store for a normalised key, as its field's type holds them."""
    if key_format is KeyFormat.BAG and key.isdigit() and len(key) == 16:
        if field_type in ("integer", "number"):
            return [int(key)]
        domain = BAG_DOMAINS.get(key[4:6])
        return [key, f"NL.IMBAG.{domain}.{key}"] if domain else [key]
    if field_type in ("integer", "number"):
        try:
            return [int(key)]
        except ValueError:
            return []  # a text key can never equal a number
    return [key]


def preferred_first(forms: list[Any], preferred: int | None) -> list[Any]:
    """The forms with the one at index ``preferred`` (the last one that matched) first."""
    if preferred is None or not 0 <= preferred < len(forms) or preferred == 0:
        return forms
    return [forms[preferred], *forms[:preferred], *forms[preferred + 1 :]]
