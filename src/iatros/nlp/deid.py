"""De-identification: find PHI in a note, replace it, and report what was replaced.

Detection is `iatros.nlp.phi.find_phi` (re-exported here): rules and word lists for all 18
HIPAA Safe Harbor identifiers, their findings through a learned span filter (shipped weights),
plus an optional trained tagger (union). The stable API:

    from iatros.nlp.deid import find_phi, PhiSpan, deidentify
    find_phi(text) -> list[PhiSpan(start, end, type)]      # detection only
    deidentify(text, patient_id, key, mode="tags")         # -> (new text, report)

Replacement (`iatros.nlp.surrogates`): `mode="tags"` writes the type ("[NAME]", "[DATE]" ...);
`mode="surrogates"` writes a realistic value of the same type, chosen by HMAC under the key so
it is the same for the same patient in every note and run (dates move by one per-patient shift).

Keys: a secret key is required. `resolve_key` takes it from the caller or IATROS_DEID_KEY and
refuses to go on without one unless a random key is asked for explicitly (pseudonyms and shifts
then hold for one run only). Pseudonyms (the patient's, the surrogates) are keyed HMAC-SHA256,
never a bare hash: without the key nobody can test guesses of a record number against them.
The report gives types, offsets, replacements and the patient's pseudonym; never the key, the
original text (unless `include_originals`) or the date shift (unless `show_shift`).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import asdict, dataclass
from typing import Any

from iatros.errors import ConfigError
from iatros.nlp.phi import PHI_TYPES, PhiSpan, find_phi
from iatros.nlp.phi_tokens import Tagger
from iatros.nlp.surrogates import MODES, Surrogates, pseudonym, shift_days

__all__ = ["KEY_ENV", "MIN_KEY_CHARS", "MODES", "PHI_TYPES", "PhiSpan", "Replacement", "deidentify",
           "find_phi", "patient_pseudonym", "resolve_key", "shift_days"]

KEY_ENV = "IATROS_DEID_KEY"
MIN_KEY_CHARS = 16


@dataclass
class Replacement:
    """One replaced span: PHI type, offsets in the original note, replacement text."""

    type: str
    start: int
    end: int
    replacement: str
    original: str | None = None


def resolve_key(key: str | bytes | None = None, *, random_key: bool = False) -> tuple[bytes, str]:
    """(key bytes, how it was given): the caller's key, else IATROS_DEID_KEY, else a fresh
    random key when `random_key`; otherwise ConfigError. Keys shorter than MIN_KEY_CHARS are
    refused (a short key can be guessed, and with it every pseudonym)."""
    if key is None:
        key = os.environ.get(KEY_ENV) or None
        source = f"from {KEY_ENV}"
    else:
        source = "given"
    if key is None:
        if random_key:
            return secrets.token_bytes(32), ("random for this run (pseudonyms and date shifts "
                                             "will differ next run)")
        raise ConfigError(f"no de-identification key: pass --key or set {KEY_ENV} to a secret of at least "
                          f"{MIN_KEY_CHARS} characters (keep it; the same key gives the same pseudonyms "
                          f"and date shifts in every run), or pass --random-key for a one-off run")
    raw = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    if len(raw) < MIN_KEY_CHARS:
        raise ConfigError(f"the de-identification key ({source}) has {len(raw)} characters; use at "
                          f"least {MIN_KEY_CHARS} (e.g. `python -c 'import secrets; "
                          f"print(secrets.token_hex(16))'`)")
    return raw, source


def patient_pseudonym(patient_id: str, key: bytes) -> str:
    """The patient's id as a keyed HMAC (16 hex characters): stable under the key, not
    reversible or testable without it."""
    return pseudonym(key, "patient", patient_id)[:16]


def deidentify(text: str, patient_id: str = "unknown", key: bytes | None = None, *,
               mode: str = "tags", tagger: Tagger | None = None, include_originals: bool = False,
               show_shift: bool = False) -> tuple[str, dict[str, Any]]:
    """(de-identified text, report). `key` is required (see `resolve_key`); `mode` is "tags"
    or "surrogates"; `tagger` adds a trained tagger's spans to the rules. The report counts
    replacements per type and lists each (type, offsets in the original, replacement; the
    original text only when asked); the date shift only with `show_shift`."""
    if not key:
        raise ConfigError(f"deidentify needs a key (bytes); see resolve_key / {KEY_ENV}")
    surrogates = Surrogates(key, patient_id, mode)
    spans = find_phi(text, tagger=tagger)
    out, last = [], 0
    replacements = []
    for s in spans:
        original = text[s.start:s.end]
        r = Replacement(s.type, s.start, s.end, surrogates.replace(s.type, original),
                        original if include_originals else None)
        replacements.append(r)
        out += [text[last:s.start], r.replacement]
        last = s.end
    out.append(text[last:])
    counts: dict[str, int] = {}
    for r in replacements:
        counts[r.type] = counts.get(r.type, 0) + 1
    report: dict[str, Any] = {"patient_pseudonym": patient_pseudonym(patient_id, key), "mode": mode,
                              "counts": counts, "replacements": [asdict(r) for r in replacements]}
    if show_shift:
        report["date_shift_days"] = surrogates.days
    return "".join(out), report
