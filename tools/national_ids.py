"""Masking of national identifiers in free text, each candidate confirmed by python-stdnum's check digits.

Distinctive formats (separators or letters: 123-45-6789, AB 12 34 56 C, 12345678Z, RSSMRA85T10A562S,
111.444.777-35, 811218-9876...) are masked wherever they appear; bare runs of 9 or 11 digits only
next to a word that says what they are (SSN, BSN, PESEL, tax id...), because counters and row ids
look the same.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from functools import cache

NATIONAL_ID = "<id>"

# (pattern, stdnum modules any of which must accept the candidate)
_FORMATS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (r"\d{3}-\d{2}-\d{4}|\d{3} \d{2} \d{4}", ("us.ssn",)),
    (r"\d{3} \d{3} \d{4}", ("gb.nhs",)),
    (r"\d{3}[ -]\d{3}[ -]\d{3}", ("ca.sin",)),
    (r"\d{8}-?[A-Z]", ("es.dni",)),
    (r"[XYZ]-?\d{7}-?[A-Z]", ("es.nie",)),
    (r"[A-Z]{6}\d{2}[A-Z]\d{2}[A-Z]\d{3}[A-Z]", ("it.codicefiscale",)),
    (r"\d{4} \d{4} \d{4}", ("in_.aadhaar",)),
    (r"[A-Z]{5}\d{4}[A-Z]", ("in_.pan",)),
    (r"(?:\d{2})?\d{6}[-+]\d{4}", ("se.personnummer", "dk.cpr")),
    (r"\d{6}[-+A]\d{3}[0-9A-Y]", ("fi.hetu",)),
    (r"\d{3}\.\d{3}\.\d{3}-\d{2}", ("br.cpf",)),
    (r"\d{17}[\dX]", ("cn.ric",)),
    (r"[12] \d{2} \d{2} \d{2} \d{3} \d{3} \d{2}", ("fr.nir",)),
)
_CUE_WORDS = (
    r"ssn|social security(?: number| no\.?)?|bsn|burgerservicenummer|pesel|personnummer|fødselsnummer|"
    r"fodselsnummer|steuer-?id|tax(?:payer)? id(?:entification)?(?: number)?|tin|"
    r"national id(?:entity)?(?: number)?|id number|sin|nir|cpr"
)
_CUE = rf"(?:{_CUE_WORDS})"
_CUED = re.compile(rf"(?P<cue>\b{_CUE}\b\W{{0,6}})(?P<num>\d{{9}}|\d{{11}})\b", re.I)
_CUED_MODULES = ("us.ssn", "nl.bsn", "ca.sin", "pl.pesel", "no.fodselsnummer", "de.idnr", "dk.cpr")
# UK National Insurance number: a format without a check digit (python-stdnum has none for it)
_NINO = re.compile(
    r"\b(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b"
)
_IBAN = re.compile(r"\b[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]{4}){2,7}(?: ?[A-Za-z0-9]{1,3})?\b")


@cache
def _validator(module: str) -> Callable[[str], bool]:
    return importlib.import_module(f"stdnum.{module}").is_valid  # type: ignore[no-any-return]


def _valid(candidate: str, modules: tuple[str, ...]) -> bool:
    for module in modules:
        value = candidate.replace(" ", "-") if module == "us.ssn" else candidate
        if _validator(module)(value):
            return True
    return False


# Every identifier here has at least four digits close together: text without any is skipped.
_DIGITS = re.compile(r"\d(?:[ .+/A-Za-z-]?\d){3}")
# One pass over the text: every format is a named alternative, dispatched on the group that matched.
_ANY_FORMAT = re.compile(
    "|".join(rf"(?P<f{i}>(?<![\w.-])(?:{pattern})(?![\w-]))" for i, (pattern, _) in enumerate(_FORMATS))
)


def _mask_format(match: re.Match[str]) -> str:
    modules = _FORMATS[int(str(match.lastgroup)[1:])][1]
    return NATIONAL_ID if _valid(match.group(), modules) else match.group()


def _iban(match: re.Match[str]) -> str:
    return NATIONAL_ID if _valid(match.group().upper(), ("iban",)) else match.group()


def redact_national_ids(text: str) -> str:
    """Replace IBANs and national identifiers whose check digits are valid with ``<id>``."""
    if not text or not _DIGITS.search(text):
        return text
    text = _IBAN.sub(_iban, text)
    text = _ANY_FORMAT.sub(_mask_format, text)
    text = _NINO.sub(NATIONAL_ID, text)
    return _CUED.sub(
        lambda m: m.group("cue") + NATIONAL_ID if _valid(m.group("num"), _CUED_MODULES) else m.group(), text
    )
