"""Significance of a gain between two paradigms measured on the same seeds.

The seed of a K-shot job picks its K-per-class subset (asva.data.dataset.kshot_indices), and the
finetune-only and pretrain+finetune jobs of one seed train on the same subset: their difference is
a paired sample. The test is scipy's paired t-test (`ttest_rel`), not the Wilcoxon signed-rank
test, because a study has about 3 seeds and with 3 pairs the smallest two-sided p-value Wilcoxon
can reach is 0.25: it could never call any gain significant. The t-test's assumption (normal
per-seed differences) is the price; the bootstrap interval of the mean difference is reported
beside it so that a reader can judge the spread without that assumption.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

ALPHA = 0.05
BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class PairedGain:
    pairs: int
    p_value: float  # nan when untestable (fewer than 2 pairs, or no variation at all)
    ci_low: float  # bootstrap 95% interval of the mean paired difference; nan below 2 pairs
    ci_high: float

    @property
    def tested(self) -> bool:
        return not math.isnan(self.p_value)

    @property
    def significant(self) -> bool:
        return self.tested and self.p_value < ALPHA


UNTESTED = PairedGain(0, math.nan, math.nan, math.nan)


def paired_gain(treated: np.ndarray, baseline: np.ndarray) -> PairedGain:
    """Paired t-test and percentile-bootstrap CI of mean(treated - baseline), pair i = seed i."""
    treated, baseline = np.asarray(treated, dtype=float), np.asarray(baseline, dtype=float)
    keep = ~(np.isnan(treated) | np.isnan(baseline))
    treated, baseline = treated[keep], baseline[keep]
    pairs = len(treated)
    if pairs < 2:
        return PairedGain(pairs, math.nan, math.nan, math.nan)
    differences = treated - baseline
    with warnings.catch_warnings():
        # Identical differences: scipy warns about precision and returns p=0 (or nan when all zero).
        warnings.simplefilter("ignore", RuntimeWarning)
        p_value = float(stats.ttest_rel(treated, baseline).pvalue)
    if np.ptp(differences) == 0:
        low = high = float(differences[0])
    else:
        # Percentile, not BCa: BCa's jackknife is undefined for the 2-3 pairs a study usually has.
        interval = stats.bootstrap(
            (differences,),
            np.mean,
            n_resamples=BOOTSTRAP_RESAMPLES,
            confidence_level=CONFIDENCE,
            method="percentile",
            random_state=0,
        ).confidence_interval
        low, high = float(interval.low), float(interval.high)
    return PairedGain(pairs, p_value, low, high)
