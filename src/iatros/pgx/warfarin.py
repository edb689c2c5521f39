"""Warfarin: the IWPC pharmacogenetic dosing equation and CPIC's genotype-guided text.

The equation is the pharmacogenetic algorithm of the International Warfarin Pharmacogenetics
Consortium (IWPC), N Engl J Med 2009;360:753-64 (doi:10.1056/NEJMoa0809329), supplementary
appendix; the CPIC warfarin guideline, Johnson et al., Clin Pharmacol Ther 2017;102:397-404
(doi:10.1002/cpt.668, PMID 28198005), recommends such a validated pharmacogenetic algorithm for
patients of non-African ancestry. It predicts the square root of the stable weekly dose (mg):

    sqrt(dose) = 5.6044 - 0.2614 age in decades + 0.0087 height (cm) + 0.0128 weight (kg)
                 - 0.8677 VKORC1 A/G - 1.6974 VKORC1 A/A - 0.4854 VKORC1 genotype unknown
                 - 0.5211 CYP2C9 *1/*2 - 0.9357 *1/*3 - 1.0616 *2/*2 - 1.9206 *2/*3 - 2.3312 *3/*3
                 - 0.2188 CYP2C9 genotype unknown
                 - 0.1092 Asian race - 0.2760 Black or African American - 0.1032 missing or mixed race
                 + 1.1816 enzyme inducer (carbamazepine, phenytoin, rifampin or rifampicin)
                 - 0.5503 amiodarone

with VKORC1 -1639G>A (rs9923231) G/G, CYP2C9 *1/*1, White race, no inducer and no amiodarone
as the reference (0), and age in decades = the decade of life counted as IWPC does (10-19 years
is 1, 20-29 is 2, ...). The coefficients were cross-checked against three independent public
implementations of the published equation (see tests/pgx/test_warfarin.py).

CPIC's caveats come from the 2017 guideline's Figure 2 and its notes (PMC5546947): for African
ancestry CYP2C9 *5, *6, *8 and *11 (not in the equation) must have been tested or the dose is
chosen clinically, carriers need 15-30% less (20-40% in variant homozygotes) and African-American
carriers of rs12777823 A 10-25% less; for other ancestries the *5/*6/*8/*11 reduction is
optional and CYP4F2*3 carriers may need 5-10% more; an alternative agent is to be considered in
CYP2C9 poor metabolizers; the algorithms were developed for a target INR of 2-3.

Nothing here is guessed: a covariate that is not given means no dose (the report says which
inputs are missing), and an unresolved genotype is never read as reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from iatros.errors import ConfigError

SOURCE = ("IWPC pharmacogenetic dosing algorithm, N Engl J Med 2009;360:753-64, supplementary "
          "appendix (doi:10.1056/NEJMoa0809329)")
GUIDELINE = ("CPIC guideline for pharmacogenetics-guided warfarin dosing: 2017 update, "
             "Clin Pharmacol Ther 2017;102:397-404 (PMID 28198005)")

INTERCEPT = 5.6044
AGE_DECADES = -0.2614
HEIGHT_CM = 0.0087
WEIGHT_KG = 0.0128
VKORC1 = {"G/G": 0.0, "A/G": -0.8677, "A/A": -1.6974, "unknown": -0.4854}
CYP2C9 = {"*1/*1": 0.0, "*1/*2": -0.5211, "*1/*3": -0.9357, "*2/*2": -1.0616,
          "*2/*3": -1.9206, "*3/*3": -2.3312, "unknown": -0.2188}
RACE = {"white": 0.0, "asian": -0.1092, "black": -0.2760, "missing-or-mixed": -0.1032}
INDUCER = 1.1816
AMIODARONE = -0.5503

RACE_NAMES = {"white": "White", "asian": "Asian", "black": "Black or African American",
              "missing-or-mixed": "Missing or mixed race"}
_RACE_ALIASES = {"white": "white", "caucasian": "white", "asian": "asian", "black": "black",
                 "african-american": "black", "black-or-african-american": "black",
                 "missing-or-mixed": "missing-or-mixed", "mixed": "missing-or-mixed",
                 "missing": "missing-or-mixed", "mixed-or-missing": "missing-or-mixed"}
INDUCERS = ("carbamazepine", "phenytoin", "rifampin", "rifampicin")
# CYP2C9 alleles CPIC 2017 names as outside the equation, with a dose reduction
CPIC_EXTRA_CYP2C9 = ("*5", "*6", "*8", "*11")
IWPC_CYP2C9_ALLELES = ("*1", "*2", "*3")

# plausibility limits: a value outside them is a typing or unit error, not a patient
AGE_YEARS = (18.0, 110.0)        # CPIC's Figure 2 and the IWPC equation are for adults
HEIGHT_RANGE = (100.0, 250.0)
WEIGHT_RANGE = (30.0, 300.0)

TARGET_INR_NOTE = ("most dosing algorithms, the IWPC equation included, were developed for a "
                   "target INR of 2-3 (CPIC 2017, Figure 2 note d); the estimate is a starting "
                   "dose to be titrated to the measured INR")
NOT_IN_EQUATION = ("the IWPC equation takes VKORC1 -1639G>A and CYP2C9 *2 and *3 only: CYP2C9 "
                   "*5, *6, *8, *11, rs12777823 and CYP4F2 are not in it")
NON_AFRICAN = ("CPIC 2017, non-African ancestry (strong): calculate the dose with a validated "
               "pharmacogenetic algorithm that includes VKORC1 -1639G>A and CYP2C9 *2 and *3, "
               "such as the IWPC equation")
AFRICAN = ("CPIC 2017, African ancestry (moderate): if CYP2C9 *5, *6, *8 and *11 were tested, "
           "calculate the dose with a validated pharmacogenetic algorithm (VKORC1 -1639G>A, "
           "CYP2C9 *2 and *3), decrease it by 15-30% in carriers of *5, *6, *8 or *11 (20-40% "
           "in variant homozygotes) and by 10-25% in African Americans carrying rs12777823 A; "
           "if *5, *6, *8 and *11 were not tested, dose warfarin clinically (without genetic "
           "information). These data derive mainly from African Americans (largely of West "
           "African origin)")
POOR_METABOLIZER = ("consider an alternative agent: CPIC 2017 (Figure 2 note e) names CYP2C9 poor "
                    "metabolism (e.g. *3/*3, *2/*3), or VKORC1 A/G or A/A together with CYP2C9 "
                    "poor metabolism")


def _number(name: str, value: float | None, low: float, high: float, unit: str,
            why: str = "") -> float | None:
    if value is None:
        return None
    if not isinstance(value, (int, float)) or math.isnan(value) or not low <= value <= high:
        shown = f"{value:g}" if isinstance(value, (int, float)) else repr(value)
        raise ConfigError(f"--{name} {shown}: expected a number of {unit} from {low:g} to "
                          f"{high:g}{why}")
    return float(value)


def parse_race(text: str | None) -> str | None:
    """'Asian', 'black', 'African-American', 'missing or mixed' ... -> an IWPC race category."""
    if text is None:
        return None
    key = "-".join(text.strip().lower().replace("_", " ").replace("/", " ").split())
    if key not in _RACE_ALIASES:
        raise ConfigError(f"--race {text!r}: expected one of {', '.join(RACE)} (the IWPC "
                          "categories: White, Asian, Black or African American, missing or "
                          "mixed race)")
    return _RACE_ALIASES[key]


def parse_inducers(values: list[str] | None) -> tuple[str, ...] | None:
    """The enzyme inducers taken ('none' for none); None when not stated."""
    if not values:
        return None
    names = [v.strip().lower() for v in values if v.strip()]
    if names == ["none"]:
        return ()
    bad = [n for n in names if n not in INDUCERS]
    if bad or "none" in names:
        raise ConfigError(f"--inducer {', '.join(bad or ['none'])!s}: expected 'none' or one or "
                          f"more of {', '.join(INDUCERS)} (the IWPC enzyme inducers)")
    return tuple(dict.fromkeys(names))


def parse_yes_no(name: str, text: str | bool | None) -> bool | None:
    if text is None or isinstance(text, bool):
        return text
    key = text.strip().lower()
    if key in ("yes", "y", "true", "1"):
        return True
    if key in ("no", "n", "false", "0"):
        return False
    raise ConfigError(f"--{name} {text!r}: expected yes or no")


@dataclass(frozen=True)
class Patient:
    """The IWPC covariates; a field left None was not given (never assumed)."""

    age_years: float | None = None
    height_cm: float | None = None
    weight_kg: float | None = None
    race: str | None = None                  # a key of RACE
    inducers: tuple[str, ...] | None = None  # () = none taken
    amiodarone: bool | None = None

    @classmethod
    def build(cls, age: float | None = None, height: float | None = None,
              weight: float | None = None, race: str | None = None,
              inducer: list[str] | None = None, amiodarone: str | bool | None = None) -> Patient:
        """Checked covariates; a ConfigError names the field and what was expected."""
        return cls(age_years=_number("age", age, *AGE_YEARS, "years",
                                     " (the IWPC equation and CPIC's Figure 2 are for adults)"),
                   height_cm=_number("height", height, *HEIGHT_RANGE, "centimetres"),
                   weight_kg=_number("weight", weight, *WEIGHT_RANGE, "kilograms"),
                   race=parse_race(race), inducers=parse_inducers(inducer),
                   amiodarone=parse_yes_no("amiodarone", amiodarone))

    def missing(self) -> list[str]:
        """The options still needed for the dose."""
        names = {"age_years": "--age", "height_cm": "--height", "weight_kg": "--weight",
                 "race": "--race", "inducers": "--inducer (or 'none')",
                 "amiodarone": "--amiodarone yes|no"}
        return [opt for f, opt in names.items() if getattr(self, f) is None]

    def given(self) -> bool:
        return len(self.missing()) < 6

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {}
        if self.age_years is not None:
            out["age_years"] = self.age_years
        if self.height_cm is not None:
            out["height_cm"] = self.height_cm
        if self.weight_kg is not None:
            out["weight_kg"] = self.weight_kg
        if self.race is not None:
            out["race"] = RACE_NAMES[self.race]
        if self.inducers is not None:
            out["enzyme_inducers"] = list(self.inducers) or ["none"]
        if self.amiodarone is not None:
            out["amiodarone"] = "yes" if self.amiodarone else "no"
        return out


def age_in_decades(age_years: float) -> int:
    """IWPC's age term: the decade of life (10-19 years -> 1, 20-29 -> 2, ...)."""
    return int(age_years // 10)


@dataclass
class Dose:
    """The equation's answer and every input it used."""

    sqrt_weekly: float
    weekly_mg: float
    inputs: dict[str, object]
    terms: dict[str, float]
    adjustments: list[dict[str, object]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"equation": "IWPC pharmacogenetic (sqrt of weekly dose)", "source": SOURCE,
                "sqrt_weekly_dose": round(self.sqrt_weekly, 4),
                "weekly_dose_mg": round(self.weekly_mg, 1),
                "daily_dose_mg": round(self.weekly_mg / 7, 2),
                "inputs": self.inputs, "terms": {k: round(v, 4) for k, v in self.terms.items()},
                **({"cpic_adjustments": self.adjustments} if self.adjustments else {})}


def iwpc_dose(patient: Patient, vkorc1: str, cyp2c9: str) -> Dose:
    """The IWPC weekly dose for complete covariates and the two genotype categories (keys of
    VKORC1 and CYP2C9, 'unknown' included). A ConfigError for missing or unknown inputs or for
    inputs whose predicted square root is not positive."""
    missing = patient.missing()
    if missing:
        raise ConfigError(f"the IWPC dose needs {', '.join(missing)}")
    if vkorc1 not in VKORC1:
        raise ConfigError(f"VKORC1 rs9923231 {vkorc1!r}: expected one of {', '.join(VKORC1)}")
    if cyp2c9 not in CYP2C9:
        raise ConfigError(f"CYP2C9 {cyp2c9!r}: expected one of {', '.join(CYP2C9)}")
    assert patient.age_years is not None and patient.height_cm is not None
    assert patient.weight_kg is not None and patient.race is not None
    decades = age_in_decades(patient.age_years)
    terms = {"intercept": INTERCEPT, "age": AGE_DECADES * decades,
             "height": HEIGHT_CM * patient.height_cm, "weight": WEIGHT_KG * patient.weight_kg,
             "VKORC1": VKORC1[vkorc1], "CYP2C9": CYP2C9[cyp2c9], "race": RACE[patient.race],
             "enzyme_inducer": INDUCER if patient.inducers else 0.0,
             "amiodarone": AMIODARONE if patient.amiodarone else 0.0}
    root = sum(terms.values())
    if root <= 0:
        raise ConfigError(f"the IWPC equation gives a square root of {root:.3f} for these inputs "
                          "(no positive dose: they lie outside the cohort the equation was fitted "
                          "on); dose clinically")
    inputs = {"age_years": patient.age_years, "age_decades": decades,
              "height_cm": patient.height_cm, "weight_kg": patient.weight_kg,
              "VKORC1 rs9923231": vkorc1, "CYP2C9": cyp2c9, "race": RACE_NAMES[patient.race],
              "enzyme_inducer": ", ".join(patient.inducers or ()) or "none",
              "amiodarone": "yes" if patient.amiodarone else "no"}
    return Dose(sqrt_weekly=root, weekly_mg=root * root, inputs=inputs, terms=terms)


@dataclass
class Genotypes:
    """The IWPC genotype categories read from the gene results, and why not when they are not."""

    vkorc1: str | None = None
    cyp2c9: str | None = None
    cpic_extra: list[str] = field(default_factory=list)   # CYP2C9 *5/*6/*8/*11 carried
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def cyp2c9_category(a: str, b: str, functions: dict[str, str]) -> tuple[str | None, list[str], str]:
    """An IWPC CYP2C9 category for a diplotype: (category or None, CPIC extra alleles carried,
    what was done). *1, *2, *3 enter as themselves; CPIC's *5, *6, *8, *11 and alleles of normal
    function enter as *1 (the equation's cohorts were typed for *2 and *3 only); any other allele
    has no category."""
    extra: list[str] = []
    mapped: list[str] = []
    for allele in (a, b):
        if allele in IWPC_CYP2C9_ALLELES:
            mapped.append(allele)
        elif allele in CPIC_EXTRA_CYP2C9:
            mapped.append("*1")
            extra.append(allele)
        elif functions.get(allele) == "Normal Function":
            mapped.append("*1")
        else:
            function = functions.get(allele, "function not in the table")
            return None, extra, (f"CYP2C9 {allele} ({function}) has no IWPC category (the "
                                 "equation takes *1, *2, *3) and CPIC 2017 gives no adjustment "
                                 "for it")
    pair = "/".join(sorted(mapped, key=lambda x: int(x[1:])))
    how = ""
    if sorted((a, b)) != sorted(pair.split("/")):
        how = f"CYP2C9 {a}/{b} entered the equation as {pair}"
        if extra:
            how += f" ({', '.join(extra)} is not in it: see the CPIC adjustment)"
    return pair, extra, how


def adjustments(dose: Dose, extra: list[str], race: str | None,
                cyp4f2_star3: bool) -> list[dict[str, object]]:
    """CPIC 2017's dose changes for what the equation leaves out, as ranges beside the dose."""
    out = []
    weekly = dose.weekly_mg
    if extra:
        low, high = (0.60, 0.80) if len(extra) == 2 else (0.70, 0.85)
        strength = ("moderate (African ancestry)" if race == "black"
                    else "optional (non-African ancestry)" if race in ("white", "asian")
                    else "moderate for African ancestry, optional otherwise")
        out.append({"for": f"CYP2C9 {' and '.join(extra)} carrier",
                    "change": "-20 to -40%" if len(extra) == 2 else "-15 to -30%",
                    "weekly_dose_mg": [round(weekly * low, 1), round(weekly * high, 1)],
                    "strength": strength})
    if cyp4f2_star3 and race != "black":
        out.append({"for": "CYP4F2*3 carrier", "change": "+5 to +10%",
                    "weekly_dose_mg": [round(weekly * 1.05, 1), round(weekly * 1.10, 1)],
                    "strength": "optional (non-African ancestry; CPIC makes no CYP4F2 "
                                "recommendation for African ancestry)"})
    return out


def cpic_text(race: str | None) -> str:
    """CPIC's genotype-guided recommendation for the stated race (both branches when unknown)."""
    if race == "black":
        return AFRICAN
    if race in ("white", "asian"):
        return NON_AFRICAN
    return f"{NON_AFRICAN}. {AFRICAN}"
