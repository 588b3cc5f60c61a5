"""One latent physiological state per case, and the measurements derived from it.

A case's latent state holds one level and value per latent variable (sodium,
bicarbonate, heart rate, PaO2, ...), drawn once from the diagnosis' tables.
Every reported number is a function of that state, so results agree within a
case and across exams:

- one heart rate for the vital signs and the ECG, whose rhythm text follows the
  rate (sinus rhythm is "sinus tachycardia" above 100/min, atrial fibrillation's
  ventricular response is "rapid" above 100/min);
- chloride is ``Na - HCO3 - anion gap``, so the anion gap computed from the
  reported electrolytes is the latent one;
- PaCO2 is the expected respiratory compensation for the bicarbonate
  (``ΔPaCO2 = 1.2 ΔHCO3`` in metabolic acidosis, ``0.7 ΔHCO3`` in metabolic
  alkalosis; Berend, de Vries & Gans, N Engl J Med 2014;371:1434-45) plus any
  primary respiratory disturbance, and pH follows from Henderson-Hasselbalch,
  ``pH = 6.1 + log10(HCO3 / (0.0307 PaCO2))``, computed from the reported values;
- the chemistry panel's bicarbonate is total CO2, which exceeds the blood gas'
  bicarbonate by the dissolved CO2, ``0.0307 PaCO2`` (about 1.2 mmol/L);
- SpO2 follows PaO2 through Severinghaus' oxygen dissociation curve,
  ``S = 1 / (1 + 23400 / (P^3 + 150 P))`` (J Appl Physiol 1979;46:599-602);
- BUN is creatinine times the BUN/creatinine ratio (above 20 in prerenal states);
- haematocrit is about three times haemoglobin;
- capillary and venous measurements are the serum and arterial values with the
  assay's error (capillary glucose: ISO 15197:2013 allows ±15%; venous blood gas:
  pH 0.03 lower, PCO2 4.4 mmHg higher, HCO3 1 mmol/L higher, Bloom et al.,
  Eur J Emerg Med 2014;21:81-8).

The functions here are pure: a :class:`Measurer` computes reported values from
a case's state and its pre-drawn noise, and caches them per case.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

#: Henderson-Hasselbalch: pK of carbonic acid and CO2 solubility (mmol/L per mmHg).
PK = 6.1
CO2_SOLUBILITY = 0.0307
#: Physiological limits of PaCO2 under maximal hyperventilation or hypoventilation (mmHg).
PACO2_LIMITS = (12.0, 110.0)


def henderson_hasselbalch(hco3: float, paco2: float) -> float:
    """Arterial pH from bicarbonate (mmol/L) and PaCO2 (mmHg)."""
    return PK + math.log10(hco3 / (CO2_SOLUBILITY * paco2))


def severinghaus_saturation(pao2: float) -> float:
    """Haemoglobin O2 saturation (%) at ``pao2`` mmHg (Severinghaus 1979)."""
    return 100.0 / (1.0 + 23400.0 / (pao2**3 + 150.0 * pao2))


def expected_paco2(hco3: float) -> float:
    """PaCO2 (mmHg) expected from respiratory compensation of a metabolic change in HCO3."""
    slope = 1.2 if hco3 < 24.0 else 0.7
    return 40.0 + slope * (hco3 - 24.0)


def rhythm_text(rhythm: str, rate: float) -> str:
    """The ECG interpretation of ``rhythm`` at ventricular ``rate``: the text follows the rate."""
    if rhythm == "sinus":
        if rate > 100:
            return "Sinus tachycardia"
        if rate < 60:
            return "Sinus bradycardia"
        return "Normal sinus rhythm"
    if rhythm == "atrial_fibrillation":
        response = "rapid" if rate > 100 else "slow" if rate < 60 else "controlled"
        return f"Atrial fibrillation with {response} ventricular response"
    if rhythm == "atrial_flutter":
        block = "2:1 block" if 130 <= rate <= 170 else "variable block"
        return f"Atrial flutter with {block}"
    if rhythm == "svt":
        return "Regular narrow-complex tachycardia without visible P waves (supraventricular tachycardia)"
    if rhythm == "vt":
        return "Regular wide-complex tachycardia with atrioventricular dissociation (ventricular tachycardia)"
    if rhythm == "complete_heart_block":
        return "Third-degree (complete) atrioventricular block with a wide-complex escape rhythm"
    return rhythm.replace("_", " ").capitalize()


#: Rhythms and the ventricular rates (/min) they can have; tests check every case against them.
RHYTHM_RATES: Mapping[str, tuple[float, float]] = {
    "sinus": (40.0, 200.0),
    "atrial_fibrillation": (40.0, 200.0),
    "atrial_flutter": (60.0, 200.0),
    "svt": (150.0, 200.0),
    "vt": (120.0, 200.0),
    "complete_heart_block": (20.0, 50.0),
}


@dataclass(frozen=True)
class Latent:
    """One latent variable of a case: its level and, when numeric, its value."""

    level: str
    value: float | None = None


class Measurer:
    """Reported values of one case: latent values, noisy measurements and derived quantities.

    ``noise(key)`` returns the case's fixed standard-normal draws for the
    reported feature ``key`` (so a result is the same however often it is asked).
    """

    def __init__(
        self,
        state: Mapping[str, Latent],
        noise: Callable[[str], tuple[float, float]],
        round_to: Callable[[str, float], float],
    ) -> None:
        self.state = state
        self.noise = noise
        self.round_to = round_to
        self._cache: dict[str, float] = {}

    def latent(self, key: str) -> float:
        value = self.state[key].value
        assert value is not None, key
        return value

    def value(self, key: str) -> float:
        """The reported value of a derived feature ``key`` (rounded to its precision)."""
        if key not in self._cache:
            self._cache[key] = self.round_to(key, DERIVATIONS[key](self))
        return self._cache[key]


def _chloride(m: Measurer) -> float:
    return m.latent("bmp.sodium") - m.latent("bmp.bicarbonate") - m.latent("bmp.anion_gap")


def _bun(m: Measurer) -> float:
    return m.latent("bmp.creatinine") * m.latent("bmp.bun_ratio")


def _hematocrit(m: Measurer) -> float:
    z, _ = m.noise("cbc.hematocrit")
    return 3.0 * m.latent("cbc.hemoglobin") + 0.6 * z


def _actual_hco3(m: Measurer) -> float:
    """Plasma bicarbonate: total CO2 less the dissolved CO2 at a PaCO2 near 40."""
    return m.latent("bmp.bicarbonate") - CO2_SOLUBILITY * 40.0


def _paco2(m: Measurer) -> float:
    z, u = m.noise("abg.paco2")
    paco2 = expected_paco2(_actual_hco3(m)) + 1.2 * z
    disturbance = m.state["abg.respiratory"].level
    if disturbance == "alkalosis":
        paco2 *= 0.85 - 0.2 * u  # hyperventilation: 15-35% below the expected value
    elif disturbance == "acidosis":
        paco2 += 12.0 + 30.0 * u
    return min(max(paco2, PACO2_LIMITS[0]), PACO2_LIMITS[1])


def _abg_hco3(m: Measurer) -> float:
    z, _ = m.noise("abg.hco3")
    hco3 = m.latent("bmp.bicarbonate") - CO2_SOLUBILITY * m.value("abg.paco2") + 0.3 * z
    return max(hco3, 2.0)


def _ph(m: Measurer) -> float:
    return henderson_hasselbalch(m.value("abg.hco3"), m.value("abg.paco2"))


#: The pulse-oximeter reading's interval for each PaO2 level (PaO2 80 mmHg is SaO2 95.7%,
#: 60 mmHg is 91%): the oximeter's error (about ±2%) never crosses a level.
SPO2_BOUNDS = {"normal": (95.0, 100.0), "low": (90.0, 94.0), "very_low": (50.0, 89.0)}


def _spo2(m: Measurer) -> float:
    z, _ = m.noise("vitals.spo2")
    low, high = SPO2_BOUNDS[m.state["abg.pao2"].level]
    reading = severinghaus_saturation(m.latent("abg.pao2")) + 0.7 * max(min(z, 2.5), -2.5)
    return min(max(round(reading), low), high)


def _ecg_rate(m: Measurer) -> float:
    return m.latent("vitals.heart_rate")


def _vbg_pco2(m: Measurer) -> float:
    z, _ = m.noise("vbg.pvco2")
    return m.value("abg.paco2") + 4.4 + 1.5 * abs(z)


def _vbg_hco3(m: Measurer) -> float:
    z, _ = m.noise("vbg.hco3_venous")
    return m.value("abg.hco3") + 1.0 + 0.3 * z


def _vbg_ph(m: Measurer) -> float:
    return henderson_hasselbalch(m.value("vbg.hco3_venous"), m.value("vbg.pvco2"))


def _poc_glucose(m: Measurer) -> float:
    z, _ = m.noise("bedside_glucose.poc_glucose")
    return m.latent("bmp.glucose") * (1.0 + 0.04 * max(min(z, 2.5), -2.5))


def _osmolality(m: Measurer) -> float:
    z, _ = m.noise("osmolality.osmolality")
    return effective_osmolality(m) + m.value("bmp.bun") / 2.8 + 6.0 + 2.0 * z


def effective_osmolality(m: Measurer) -> float:
    """``2 Na + glucose / 18`` (mOsm/kg), the tonicity criterion of HHS (ADA 2009)."""
    return 2.0 * m.latent("bmp.sodium") + m.latent("bmp.glucose") / 18.0


#: hs-cTnI (Abbott ARCHITECT, 99th percentile 26 ng/L) per unit of hs-cTnT (Roche, 14 ng/L).
TROPONIN_I_PER_T = 26.0 / 14.0
#: NT-proBNP per unit of BNP at the acute rule-out thresholds (300 and 100 pg/mL, ESC 2021).
NTPROBNP_PER_BNP = 3.0


def _at_same_side(value: float, source: float, source_limit: float, limit: float) -> float:
    """Keep a second assay on the same side of its cut-off as the first (both report one injury)."""
    return min(value, limit) if source <= source_limit else max(value, limit + 1.0)


def _troponin_i(m: Measurer) -> float:
    z, _ = m.noise("troponin_i.troponin_i")
    t = m.latent("troponin.troponin")
    return _at_same_side(t * TROPONIN_I_PER_T * (1.0 + 0.05 * z), t, 14.0, 26.0)


def _nt_probnp(m: Measurer) -> float:
    z, _ = m.noise("nt_probnp.nt_probnp")
    bnp = m.latent("bnp.bnp")
    return _at_same_side(bnp * NTPROBNP_PER_BNP * (1.0 + 0.1 * z), bnp, 100.0, 300.0)


def _anion_gap(m: Measurer) -> float:
    return m.latent("bmp.anion_gap")


#: How each derived feature is computed. Keys are the reported feature keys.
DERIVATIONS: dict[str, Callable[[Measurer], float]] = {
    "bmp.chloride": _chloride,
    "bmp.bun": _bun,
    "cbc.hematocrit": _hematocrit,
    "abg.paco2": _paco2,
    "abg.hco3": _abg_hco3,
    "abg.ph": _ph,
    "vitals.spo2": _spo2,
    "ecg.rate": _ecg_rate,
    "vbg.pvco2": _vbg_pco2,
    "vbg.hco3_venous": _vbg_hco3,
    "vbg.ph_venous": _vbg_ph,
    "bedside_glucose.poc_glucose": _poc_glucose,
    "osmolality.osmolality": _osmolality,
    "effective_osmolality": effective_osmolality,
    "anion_gap": _anion_gap,
    "troponin_i.troponin_i": _troponin_i,
    "nt_probnp.nt_probnp": _nt_probnp,
}
