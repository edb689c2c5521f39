"""National Early Warning Score 2 (NEWS2) for one set of observations.

Source: Royal College of Physicians. National Early Warning Score (NEWS) 2: Standardising the
assessment of acute-illness severity in the NHS. Updated report of a working party. London: RCP,
2017. Chart 1 (the scoring system) gives the bands below, Chart 3 (thresholds and triggers) the
clinical risk and response, Chart 4 (clinical response) the minimum monitoring frequency and
what the ward does. The bands were read from copies of Chart 1 and Chart 4 as published by the
RCP ("National Early Warning Score (NEWS) 2 (c) Royal College of Physicians 2017") and
cross-checked against:

- Echevarria C, Steer J, Bourke SC et al., Thorax 2019;74:941-6 (PMC6817986), Table 1: both
  SpO2 scales, including Scale 2's "93 or more on air 0; 93-94 / 95-96 / 97 or more on O2
  1 / 2 / 3";
- an independent open-source implementation, github.com/kscarlett/news2 (Go, MIT; news2.go,
  response.go): every band of every parameter, the red score, the four risk levels and Chart 4's
  monitoring frequencies;
- the openEHR NEWS2 archetype's clinical-risk codes (as generated in EHRbase's SDK examples):
  Low "Ward-based response", Low-medium "Urgent ward-based response", Medium "Key threshold for
  urgent response", High "Urgent or emergency response" (Chart 3's wording), and a transcription
  of Charts 1-3 from the RCP's report PDF in a public clinical-safety review
  (the same bands, and "no score if chronic" for confusion).

Chart 1 (points 3 2 1 0 1 2 3 from the low end to the high end of each parameter):

    respiration rate /min     <=8         9-11   12-20                21-24  >=25
    SpO2 Scale 1 %            <=91  92-93 94-95  >=96
    SpO2 Scale 2 %            <=83  84-85 86-87  88-92, >=93 on air   93-94 on O2  95-96 on O2  >=97 on O2
    air or oxygen                   oxygen       air
    systolic BP mmHg          <=90  91-100 101-110 111-219                          >=220
    pulse /min                <=40        41-50  51-90                91-110 111-130 >=131
    consciousness                                Alert                               CVPU
    temperature C             <=35.0      35.1-36.0 36.1-38.0         38.1-39.0 >=39.1

Scale 2 is only for patients with hypercapnic respiratory failure whose target range of 88-92%
was prescribed by a clinician; everyone else is scored on Scale 1 (the default here). "C" is
*new* confusion (or new disorientation or agitation); confusion that is the patient's known
baseline is recorded as Alert ("no score if chronic").

How values are read. A value is taken at the chart's resolution before it is banded, as a chart
would record it: whole numbers for rates, SpO2 and blood pressure, 0.1 C for temperature,
halves rounded up (so 20.4 breaths/min reads as 20, 20.5 as 21, and 38.05 C as 38.1). A band's
upper bound is inclusive. Temperature is in C; F only when the caller says so
(``temperature_unit="F"``). A value outside physiological limits (``LIMITS``) is an
``ObservationError`` naming the field and the expected range: it is a wrong reading or a wrong
unit, never a score.

Missing values are never scored as normal. A parameter that was not recorded (``None``, or NaN
as pandas writes a missing value) has no sub-score, the result lists it in ``missing`` with the
reason, ``complete`` is False, and ``score`` is then the sum of what was recorded: a lower
bound (``max_score`` is the highest the score could reach once the rest is recorded). The risk
band of an incomplete result is likewise the least it can be. On Scale 2, SpO2 at 93% or more
scores 0 on air and 1-3 on oxygen, so without "air or oxygen" it is unscored; below 93% the two
agree and it is scored.

This is the arithmetic only: it decides nothing clinical by itself. The RCP charts and local
escalation policy are what a ward follows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd

from iatros.errors import CorruptDataError

SOURCE = ("Royal College of Physicians. National Early Warning Score (NEWS) 2: Standardising the "
          "assessment of acute-illness severity in the NHS. Updated report of a working party. "
          "London: RCP, 2017 (Charts 1, 3 and 4)")

# the seven parameters of Chart 1, in the chart's order
PARAMETERS = ("respiration_rate", "spo2", "air_or_oxygen", "systolic_bp", "pulse",
              "consciousness", "temperature")
LABELS = {"respiration_rate": "respiration rate", "spo2": "SpO2", "air_or_oxygen": "air or oxygen",
          "systolic_bp": "systolic blood pressure", "pulse": "pulse",
          "consciousness": "consciousness", "temperature": "temperature"}


class ObservationError(CorruptDataError):
    """An observation that cannot be scored: out of physiological limits, of the wrong type, or
    an unknown code. ``field`` names the observation, ``expected`` what it should be and
    ``record`` (when known) which reading it was."""

    def __init__(self, field: str, value: object, expected: str, record: str = ""):
        self.field, self.value, self.expected, self.record = field, value, expected, record
        shown = f"{value:g}" if isinstance(value, float) else repr(value)
        where = f"{record}: " if record else ""
        super().__init__(f"{where}{field}: {shown} cannot be scored; expected {expected}")


@dataclass(frozen=True)
class Band:
    """One cell of Chart 1: a value above the previous cell's ``upper`` and up to this one
    (inclusive, at the chart's resolution) scores ``points``; ``chart`` is the cell as printed."""

    upper: float
    points: int
    chart: str


INF = math.inf
# Chart 1, low end to high end. SpO2 has one table per (scale, on oxygen): on Scale 1 oxygen
# does not change the SpO2 points (it scores 2 of its own under "air or oxygen").
SCALE_1 = (Band(91, 3, "<=91"), Band(93, 2, "92-93"), Band(95, 1, "94-95"), Band(INF, 0, ">=96"))
SCALE_2_LOW = (Band(83, 3, "<=83"), Band(85, 2, "84-85"), Band(87, 1, "86-87"))
BANDS: dict[str, tuple[Band, ...]] = {
    "respiration_rate": (Band(8, 3, "<=8"), Band(11, 1, "9-11"), Band(20, 0, "12-20"),
                         Band(24, 2, "21-24"), Band(INF, 3, ">=25")),
    "systolic_bp": (Band(90, 3, "<=90"), Band(100, 2, "91-100"), Band(110, 1, "101-110"),
                    Band(219, 0, "111-219"), Band(INF, 3, ">=220")),
    "pulse": (Band(40, 3, "<=40"), Band(50, 1, "41-50"), Band(90, 0, "51-90"),
              Band(110, 1, "91-110"), Band(130, 2, "111-130"), Band(INF, 3, ">=131")),
    "temperature": (Band(35.0, 3, "<=35.0"), Band(36.0, 1, "35.1-36.0"), Band(38.0, 0, "36.1-38.0"),
                    Band(39.0, 1, "38.1-39.0"), Band(INF, 2, ">=39.1")),
}
SPO2_BANDS: dict[tuple[int, bool], tuple[Band, ...]] = {
    (1, False): SCALE_1,
    (1, True): SCALE_1,
    (2, False): (*SCALE_2_LOW, Band(INF, 0, "88-92, >=93 on air")),
    (2, True): (*SCALE_2_LOW, Band(92, 0, "88-92"), Band(94, 1, "93-94 on oxygen"),
                Band(96, 2, "95-96 on oxygen"), Band(INF, 3, ">=97 on oxygen")),
}
AIR_OR_OXYGEN = {False: 0, True: 2}
# ACVPU: Alert 0; new Confusion, Voice, Pain, Unresponsive 3
CONSCIOUSNESS = {"A": 0, "C": 3, "V": 3, "P": 3, "U": 3}
CONSCIOUSNESS_WORDS = {"alert": "A", "confusion": "C", "new confusion": "C", "voice": "V",
                       "pain": "P", "unresponsive": "U"}
# the chart's resolution per numeric parameter (SpO2 included)
RESOLUTION = {"respiration_rate": Decimal(1), "spo2": Decimal(1), "systolic_bp": Decimal(1),
              "pulse": Decimal(1), "temperature": Decimal("0.1")}


@dataclass(frozen=True)
class Limit:
    low: float
    high: float
    unit: str


# physiological limits: outside them a value is a wrong reading or unit, not a score
LIMITS = {"respiration_rate": Limit(0, 100, "breaths/min"), "spo2": Limit(0, 100, "%"),
          "systolic_bp": Limit(0, 350, "mmHg"), "pulse": Limit(0, 350, "beats/min"),
          "temperature": Limit(25.0, 45.0, "C")}
TEMPERATURE_UNITS = ("C", "F")


@dataclass(frozen=True)
class RiskBand:
    """A row of Charts 3 and 4: from aggregate ``min_score`` (and, where ``red_score``, only
    with a single parameter scoring 3), the clinical risk, Chart 3's response, Chart 4's
    minimum monitoring and clinical response (paraphrased)."""

    min_score: int
    red_score: bool
    risk: str
    response: str
    monitoring: str
    action: str


# checked top down; the first row that applies is the band
RISK_BANDS = (
    RiskBand(7, False, "high", "Urgent or emergency response", "continuous monitoring of vital signs",
             "registered nurse immediately informs the medical team caring for the patient (at "
             "least specialist registrar level); emergency assessment by a team with critical-care "
             "competencies, including advanced airway management; consider transfer to a level 2 "
             "or 3 care facility (high-dependency unit or ICU); care in an environment with "
             "monitoring facilities"),
    RiskBand(5, False, "medium", "Key threshold for urgent response", "minimum 1 hourly",
             "registered nurse immediately informs the medical team caring for the patient and "
             "asks for urgent assessment by a clinician or team with core competencies in the "
             "care of acutely ill patients; care in an environment with monitoring facilities"),
    RiskBand(0, True, "low-medium", "Urgent ward-based response", "minimum 1 hourly",
             "registered nurse informs the medical team caring for the patient, who review and "
             "decide whether care needs escalating"),
    RiskBand(1, False, "low", "Ward-based response", "minimum 4-6 hourly",
             "a registered nurse assesses the patient and decides whether monitoring should be "
             "more frequent or care escalated"),
    RiskBand(0, False, "low", "Ward-based response", "minimum 12 hourly",
             "continue routine NEWS monitoring"),
)


def risk_band(score: int, red_score: bool) -> RiskBand:
    """Charts 3 and 4 for an aggregate score and whether any single parameter scored 3."""
    return next(b for b in RISK_BANDS if score >= b.min_score and (red_score or not b.red_score))


@dataclass(frozen=True)
class Observations:
    """One set of bedside observations. ``None`` (or NaN) is "not recorded", never normal.

    ``on_oxygen`` is the chart's "air or oxygen?" (True: supplemental oxygen). ``spo2_scale`` is
    1 unless a clinician prescribed a target of 88-92% for hypercapnic respiratory failure.
    ``consciousness`` is ACVPU: "A", "C" (new confusion), "V", "P", "U" or the words.
    ``temperature`` is in C unless ``temperature_unit="F"``."""

    respiration_rate: float | None = None
    spo2: float | None = None
    on_oxygen: bool | None = None
    systolic_bp: float | None = None
    pulse: float | None = None
    consciousness: str | None = None
    temperature: float | None = None
    spo2_scale: int = 1
    temperature_unit: str = "C"

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> Observations:
        """From a dict (a JSON reading, a table row); an unknown key is an error naming it."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ObservationError(unknown[0], values[unknown[0]],
                                   f"one of the observation names {sorted(names)}")
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class News2Result:
    """NEWS2 of one observation set.

    ``score`` sums the sub-scores that could be given; when ``complete`` is False it is a lower
    bound (``max_score`` the most it could be) and ``missing`` / ``reasons`` say what is absent.
    ``red_score``: a single parameter scored 3. ``risk`` / ``response`` / ``monitoring`` /
    ``action`` are Charts 3 and 4 for ``score`` (for an incomplete result: at least this band)."""

    score: int
    subscores: dict[str, int | None]
    complete: bool
    missing: tuple[str, ...]
    reasons: dict[str, str]
    max_score: int
    red_score: bool
    red_parameters: tuple[str, ...]
    risk: str
    response: str
    monitoring: str
    action: str
    spo2_scale: int
    values: dict[str, object] = field(default_factory=dict)

    @property
    def is_lower_bound(self) -> bool:
        """True when parameters are missing: the true score may be higher."""
        return not self.complete

    def summary(self) -> str:
        """One line in words, saying when the score is only a lower bound."""
        risk = f"{self.risk} clinical risk: {self.response} ({self.monitoring})"
        red = (f"; 3 in a single parameter: {', '.join(LABELS[p] for p in self.red_parameters)}"
               if self.red_score else "")
        if self.complete:
            return f"NEWS2 {self.score}, {risk}{red}"
        absent = "; ".join(f"{LABELS[p]}: {self.reasons[p]}" for p in self.missing)
        at_least = "" if self.risk == "high" else "at least "
        return (f"NEWS2 at least {self.score} (incomplete, a lower bound; up to {self.max_score} "
                f"once recorded; missing {absent}), {at_least}{risk}{red}")

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready data, with ``is_lower_bound`` and ``summary``."""
        out = asdict(self)
        out["missing"] = list(self.missing)
        out["red_parameters"] = list(self.red_parameters)
        out["is_lower_bound"] = self.is_lower_bound
        out["summary"] = self.summary()
        return out


def _is_missing(value: object) -> bool:
    """None, NaN, pandas' NA or NaT: not recorded."""
    if value is None:
        return True
    if type(value) in (int, str, bool):   # the common cases, without numpy's checks
        return False
    if type(value) is float:
        return math.isnan(value)
    return np.ndim(value) == 0 and not isinstance(value, str) and bool(pd.isna(value))


def _number(name: str, value: object) -> float:
    """A finite real number (bools and strings are refused, they are someone's mistake)."""
    limit = LIMITS[name]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise ObservationError(name, value, f"a number in {limit.unit}")
    number = float(value)
    if not math.isfinite(number):
        raise ObservationError(name, value, f"{limit.low:g}-{limit.high:g} {limit.unit}")
    return number


def _at_resolution(name: str, value: float) -> float:
    """The value as the chart records it (whole numbers, 0.1 C), halves rounded up."""
    step = RESOLUTION[name]
    return float((Decimal(repr(value)) / step).quantize(Decimal(1), rounding=ROUND_HALF_UP) * step)


def _checked(name: str, value: float, hint: str = "") -> float:
    limit = LIMITS[name]
    if not limit.low <= value <= limit.high:
        raise ObservationError(name, value, f"{limit.low:g}-{limit.high:g} {limit.unit}{hint}")
    return _at_resolution(name, value)


def _points(bands: tuple[Band, ...], value: float) -> int:
    return next(b.points for b in bands if value <= b.upper)


def _oxygen_options(oxygen: bool | None) -> tuple[bool, ...]:
    return (False, True) if oxygen is None else (oxygen,)


# A reader takes the recorded value, the SpO2 scale and whether the patient is on oxygen (None:
# not recorded) and returns the value as read and the points it can score: one number when the
# parameter is scored, several when the chart needs something that was not recorded.
Reader = Callable[[object, Observations, bool | None], tuple[object, set[int]]]


def _banded(name: str) -> Reader:
    def read(value: object, obs: Observations, oxygen: bool | None) -> tuple[object, set[int]]:
        reading = _checked(name, _number(name, value))
        return reading, {_points(BANDS[name], reading)}
    return read


def _read_spo2(value: object, obs: Observations, oxygen: bool | None) -> tuple[object, set[int]]:
    reading = _checked("spo2", _number("spo2", value))
    return reading, {_points(SPO2_BANDS[(obs.spo2_scale, o2)], reading) for o2 in _oxygen_options(oxygen)}


def _read_air_or_oxygen(value: object, obs: Observations, oxygen: bool | None) -> tuple[object, set[int]]:
    return ("oxygen" if oxygen else "air"), {AIR_OR_OXYGEN[bool(oxygen)]}


def _read_consciousness(value: object, obs: Observations, oxygen: bool | None) -> tuple[object, set[int]]:
    code = CONSCIOUSNESS_WORDS.get(str(value).strip().lower(), str(value).strip().upper())
    if not isinstance(value, str) or code not in CONSCIOUSNESS:
        raise ObservationError("consciousness", value,
                               "ACVPU: 'A' (alert), 'C' (new confusion), 'V' (voice), 'P' (pain) "
                               "or 'U' (unresponsive)")
    return code, {CONSCIOUSNESS[code]}


def _read_temperature(value: object, obs: Observations, oxygen: bool | None) -> tuple[object, set[int]]:
    unit = str(obs.temperature_unit).strip().upper().removeprefix("°")
    if unit not in TEMPERATURE_UNITS:
        raise ObservationError("temperature_unit", obs.temperature_unit, "'C' or 'F'")
    number = _number("temperature", value)
    low, high = LIMITS["temperature"].low, LIMITS["temperature"].high
    if unit == "F":
        celsius = round((number - 32.0) * 5.0 / 9.0, 9)   # 9 places: no float noise at a boundary
        if not low <= celsius <= high:
            raise ObservationError("temperature", f"{number:g} F",
                                   f"{low * 9 / 5 + 32:g}-{high * 9 / 5 + 32:g} F ({low:g}-{high:g} C)")
        number = celsius
    hint = " (a Fahrenheit reading needs temperature_unit='F')" if 77 <= number <= 113 else ""
    reading = _checked("temperature", number, hint)
    return reading, {_points(BANDS["temperature"], reading)}


READERS: dict[str, Reader] = {
    "respiration_rate": _banded("respiration_rate"), "spo2": _read_spo2,
    "air_or_oxygen": _read_air_or_oxygen, "systolic_bp": _banded("systolic_bp"),
    "pulse": _banded("pulse"), "consciousness": _read_consciousness,
    "temperature": _read_temperature,
}
# every score a parameter can take (for one that was not recorded: the most it could add)
POSSIBLE: dict[str, Callable[[int, bool | None], set[int]]] = {
    "spo2": lambda scale, oxygen: {b.points for o2 in _oxygen_options(oxygen)
                                   for b in SPO2_BANDS[(scale, o2)]},
    "air_or_oxygen": lambda scale, oxygen: set(AIR_OR_OXYGEN.values()),
    "consciousness": lambda scale, oxygen: set(CONSCIOUSNESS.values()),
    **{name: (lambda scale, oxygen, name=name: {b.points for b in BANDS[name]}) for name in BANDS},
}


def _read_on_oxygen(value: object) -> bool | None:
    if _is_missing(value):
        return None
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, (int, float, np.number))
                                               and value in (0, 1)):
        return bool(value)
    words = {"air": False, "room air": False, "oxygen": True, "o2": True}
    if isinstance(value, str) and value.strip().lower() in words:
        return words[value.strip().lower()]
    raise ObservationError("on_oxygen", value, "True (supplemental oxygen) or False (air)")


def check_observations(observations: Observations) -> dict[str, object]:
    """Each recorded parameter as the chart reads it (the checks of `news2` without the
    scoring); ObservationError names the first that cannot be scored."""
    obs = observations
    if isinstance(obs.spo2_scale, (bool, np.bool_)) or obs.spo2_scale not in (1, 2):
        raise ObservationError("spo2_scale", obs.spo2_scale,
                               "1, or 2 where a clinician prescribed a target of 88-92% "
                               "(hypercapnic respiratory failure)")
    oxygen = _read_on_oxygen(obs.on_oxygen)
    recorded = {"respiration_rate": obs.respiration_rate, "spo2": obs.spo2,
                "air_or_oxygen": obs.on_oxygen, "systolic_bp": obs.systolic_bp, "pulse": obs.pulse,
                "consciousness": obs.consciousness, "temperature": obs.temperature}
    return {name: READERS[name](value, obs, oxygen)[0] for name, value in recorded.items()
            if not _is_missing(value)}


def news2(observations: Observations | Mapping[str, object]) -> News2Result:
    """Score one observation set (an ``Observations`` or a mapping of its field names)."""
    obs = (observations if isinstance(observations, Observations)
           else Observations.from_mapping(observations))
    if isinstance(obs.spo2_scale, (bool, np.bool_)) or obs.spo2_scale not in (1, 2):
        raise ObservationError("spo2_scale", obs.spo2_scale,
                               "1, or 2 where a clinician prescribed a target of 88-92% "
                               "(hypercapnic respiratory failure)")
    scale = int(obs.spo2_scale)
    if type(obs.spo2_scale) is not int:
        obs = replace(obs, spo2_scale=scale)
    oxygen = _read_on_oxygen(obs.on_oxygen)
    recorded = {"respiration_rate": obs.respiration_rate, "spo2": obs.spo2,
                "air_or_oxygen": obs.on_oxygen, "systolic_bp": obs.systolic_bp, "pulse": obs.pulse,
                "consciousness": obs.consciousness, "temperature": obs.temperature}
    subscores: dict[str, int | None] = {}
    reasons: dict[str, str] = {}
    highest = 0     # the most the parameters not scored could add
    values: dict[str, object] = {}
    for name in PARAMETERS:
        if _is_missing(recorded[name]):
            candidates, reasons[name] = POSSIBLE[name](scale, oxygen), "not recorded"
        else:
            values[name], candidates = READERS[name](recorded[name], obs, oxygen)
            if len(candidates) > 1:   # SpO2 >= 93% on Scale 2 without air or oxygen
                reasons[name] = (f"on Scale 2, SpO2 {values[name]:g}% scores "
                                 f"{_points(SPO2_BANDS[(2, False)], values[name])} on air and "
                                 f"{_points(SPO2_BANDS[(2, True)], values[name])} on oxygen; "
                                 "air or oxygen not recorded")
        if len(candidates) == 1:
            subscores[name] = next(iter(candidates))
        else:
            subscores[name], highest = None, highest + max(candidates)

    missing = tuple(p for p in PARAMETERS if subscores[p] is None)
    score = sum(s for s in subscores.values() if s is not None)
    red = tuple(p for p in PARAMETERS if subscores[p] == 3)
    band = risk_band(score, bool(red))
    return News2Result(score=score, subscores=subscores, complete=not missing, missing=missing,
                       reasons=reasons, max_score=score + highest, red_score=bool(red),
                       red_parameters=red, risk=band.risk, response=band.response,
                       monitoring=band.monitoring, action=band.action, spo2_scale=scale,
                       values=values)
