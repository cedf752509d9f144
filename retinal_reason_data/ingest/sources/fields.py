"""Reading the cells that collections write for eye, sex, age and numeric labels, however they spell them."""

from __future__ import annotations

import re

from retinal_reason_data.schema import Eye, Sex

_EYES = {
    "r": Eye.RIGHT,
    "re": Eye.RIGHT,
    "od": Eye.RIGHT,
    "right": Eye.RIGHT,
    "right eye": Eye.RIGHT,
    "l": Eye.LEFT,
    "le": Eye.LEFT,
    "os": Eye.LEFT,
    "left": Eye.LEFT,
    "left eye": Eye.LEFT,
}
_SEXES = {"m": Sex.MALE, "male": Sex.MALE, "man": Sex.MALE, "f": Sex.FEMALE, "female": Sex.FEMALE, "woman": Sex.FEMALE}
_NUMBER = re.compile(r"^[+-]?\d+(?:\.0*)?$")


def parse_eye(value: object) -> Eye:
    """Eye.RIGHT / Eye.LEFT from 'OD', 'R', 'right', 'Right eye', ...; Eye.UNKNOWN for anything else."""
    if value is None:
        return Eye.UNKNOWN
    return _EYES.get(str(value).strip().lower().replace("_", " "), Eye.UNKNOWN)


def parse_sex(value: object) -> Sex:
    """Sex from 'M', 'male', 'F', 'Female', ...; Sex.UNKNOWN for anything else (numeric codes differ by
    collection, so adapters translate those themselves)."""
    if value is None:
        return Sex.UNKNOWN
    return _SEXES.get(str(value).strip().lower(), Sex.UNKNOWN)


def parse_age(value: object) -> int | None:
    """Whole years from '63', '63.0' or 63.4; None when empty, not a number or outside 0-120."""
    if value is None or isinstance(value, bool):
        return None
    try:
        years = float(str(value).strip())
    except ValueError:
        return None
    return int(years) if 0 <= years <= 120 else None


def number_label(value: object) -> str:
    """A numeric label as the integer text a label table maps ('1.0' and 1.0 -> '1'); other text stripped."""
    text = str(value).strip() if value is not None else ""
    if _NUMBER.match(text):
        return str(int(float(text)))
    return text
