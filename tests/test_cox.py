"""The clustered Cox fit on counting-process data: score residuals under delayed entry.

Real data throughout: the Stanford heart-transplant survival data shipped with statsmodels
(Miller 1976, *Biometrika* 63(3), 449–464; 69 patients, 45 deaths, survival in whole days, age at
transplant). Follow-up is split into pieces the way ``churn_episodes`` splits customers at the
survey waves; most pieces then contain no death, which is what broke ``statsmodels``' score
residuals (issue 11).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from statsmodels.duration.hazard_regression import PHReg

from analysis.models import hazard


@pytest.fixture(scope="module")
def heart() -> pd.DataFrame:
    data = sm.datasets.heart.load_pandas().data
    return pd.DataFrame(
        {
            "id": np.arange(len(data)),
            "start": 0.0,
            "stop": data["survival"].to_numpy(float),
            "event": data["censors"].to_numpy(int),
            "age": data["age"].to_numpy(float),
        }
    )


def split_at(subjects: pd.DataFrame, cuts_of) -> pd.DataFrame:
    """Counting-process form: each subject's (start, stop] cut at ``cuts_of(subject)``.

    The subject's event goes to its last piece; covariates are copied to every piece.
    """
    rows = []
    for subject in subjects.to_dict("records"):
        inner = [c for c in sorted(set(cuts_of(subject))) if subject["start"] < c < subject["stop"]]
        bounds = [subject["start"], *inner, subject["stop"]]
        for k, (low, high) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            last = k == len(bounds) - 2
            rows.append({**subject, "start": low, "stop": high, "event": subject["event"] * last})
    return pd.DataFrame(rows)


def without_failure_time(episodes: pd.DataFrame) -> int:
    """Rows whose interval (start, stop] contains no failure time of the data."""
    failures = np.unique(episodes.loc[episodes["event"] == 1, "stop"])
    inside = np.searchsorted(failures, episodes["stop"], "right") - np.searchsorted(
        failures, episodes["start"], "right"
    )
    return int((inside == 0).sum())


def statsmodels_robust_se(episodes: pd.DataFrame, columns, groups) -> tuple[np.ndarray, float]:
    """The sandwich built on ``PHReg``'s own score residuals, as ``cox_cluster_robust`` used to.

    Survival is in whole days, so a shift of 1e-6 day turns PHReg's closed entry [start into
    the open (start of the counting process without changing any other risk set. Rows past the
    last failure get NaN residuals from PHReg, taken as 0 (as the old code did). Returns the
    estimate and the robust SE without G/(G − 1), as ``PHReg.fit(groups=...)`` reports it.
    """
    entry = np.where(episodes["start"] > 0, episodes["start"] + 1e-6, 0.0)
    fit = PHReg(
        episodes["stop"],
        episodes[list(columns)],
        status=episodes["event"],
        entry=entry,
        ties="breslow",
    ).fit()
    scores = np.nan_to_num(fit.score_residuals, nan=0.0)
    sums = pd.DataFrame(scores).groupby(np.asarray(groups)).sum().to_numpy()
    bread = fit.cov_params()
    return fit.params, float(np.sqrt((bread @ sums.T @ sums @ bread)[0, 0]))


# ---------------------------------------------------------------------------------------------
# An explicit, row-by-row Lin–Wei sandwich: the definitions written out, no running sums.


def explicit_lin_wei(entry, stop, event, exog, clusters):
    """Breslow partial likelihood fit by Newton's method and the Lin–Wei sandwich, by loops.

    Risk set at failure time t: rows with entry < t ≤ stop. Score residual of row i:
    Σ_j [dN_i(t_j) − Y_i(t_j) r_i d_j / S0_j] (x_i − x̄_j). Returns ``(beta, residuals, cov)``
    with cov = I⁻¹ (Σ_g U_g U_gᵀ) I⁻¹ · G/(G − 1).
    """
    n, p = exog.shape
    failures = sorted({float(t) for t, d in zip(stop, event, strict=True) if d == 1})

    def pieces(beta):
        risk = [float(np.exp(exog[i] @ beta)) for i in range(n)]
        score, information, per_time = np.zeros(p), np.zeros((p, p)), []
        for t in failures:
            members = [i for i in range(n) if entry[i] < t <= stop[i]]
            dying = [i for i in range(n) if stop[i] == t and event[i] == 1]
            s0 = sum(risk[i] for i in members)
            s1 = sum(risk[i] * exog[i] for i in members)
            s2 = sum(risk[i] * np.outer(exog[i], exog[i]) for i in members)
            xbar = s1 / s0
            for i in dying:
                score += exog[i] - xbar
            information += len(dying) * (s2 / s0 - np.outer(xbar, xbar))
            per_time.append((t, members, dying, xbar, len(dying) / s0))
        return risk, score, information, per_time

    beta = np.zeros(p)
    for _ in range(50):
        _, score, information, _ = pieces(beta)
        step = np.linalg.solve(information, score)
        beta = beta + step
        if np.max(np.abs(step)) < 1e-13:
            break
    risk, score, information, per_time = pieces(beta)
    residuals = np.zeros((n, p))
    for _t, members, dying, xbar, hazard_step in per_time:
        for i in members:
            residuals[i] += ((i in dying) - risk[i] * hazard_step) * (exog[i] - xbar)
    labels = sorted(set(clusters))
    sums = np.array([residuals[np.asarray(clusters) == g].sum(axis=0) for g in labels])
    bread = np.linalg.inv(information)
    g = len(labels)
    return beta, residuals, bread @ sums.T @ sums @ bread * g / (g - 1)


# ---------------------------------------------------------------------------------------------
# 1. Invariance to splitting follow-up into pieces.


@pytest.mark.parametrize("clusters", ["subject", "groups of patients"])
def test_splitting_follow_up_leaves_the_clustered_cox_unchanged(heart, clusters):
    """Split into weekly pieces and at random times: same estimate, same robust covariance.

    The pieces of one subject have score residuals summing to the subject's own (each death
    and each risk-set term lands in exactly one piece), so any clustering at least as coarse
    as the subject gives the same sandwich. Unsplit, with entry 0, statsmodels' robust PHReg is
    correct and is the reference (it omits G/(G − 1), which we add). The old way,
    statsmodels' score residuals on the split rows, is shown to be far off on the same data.
    """
    rng = np.random.default_rng(20261203)
    label = heart["id"] if clusters == "subject" else heart["id"] % 12
    heart = heart.assign(cluster=label)
    random_cuts = {i: rng.uniform(0, 1800, 6).round(1) for i in heart["id"]}
    episodes = split_at(heart, lambda s: [*np.arange(7.0, s["stop"], 7.0), *random_cuts[s["id"]]])
    assert len(episodes) > 3500
    assert without_failure_time(episodes) > 2500  # the intervals that broke PHReg's residuals
    assert episodes.groupby("id")["event"].sum().equals(heart.set_index("id")["event"])

    reference = PHReg(heart["stop"], heart[["age"]], status=heart["event"], ties="breslow").fit(
        groups=heart["cluster"].to_numpy()
    )
    g = heart["cluster"].nunique()
    whole, whole_cov = hazard.cox_cluster_robust(heart, heart[["age"]], heart["cluster"])
    parts, parts_cov = hazard.cox_cluster_robust(episodes, episodes[["age"]], episodes["cluster"])

    assert whole[0] == pytest.approx(reference.params[0], rel=1e-8)
    assert np.sqrt(whole_cov[0, 0] * (g - 1) / g) == pytest.approx(reference.bse[0], rel=1e-8)
    assert parts[0] == pytest.approx(whole[0], rel=1e-8)
    assert parts_cov[0, 0] == pytest.approx(whole_cov[0, 0], rel=1e-8)

    old_params, old_se = statsmodels_robust_se(episodes, ["age"], episodes["cluster"])
    assert old_params[0] == pytest.approx(whole[0], rel=1e-6)  # its fit is right ...
    assert old_se / reference.bse[0] > 10  # ... its residuals are not (about 60× by subject)


def test_a_subject_split_where_no_one_fails_adds_nothing(heart):
    """A piece whose interval contains no failure time has a score residual of exactly zero."""
    episodes = split_at(heart, lambda s: [s["stop"] / 3, s["stop"] / 2])
    failures = np.unique(heart.loc[heart["event"] == 1, "stop"])
    params, _ = hazard.cox_cluster_robust(episodes, episodes[["age"]], episodes["id"])
    residuals = hazard._score_residuals(
        episodes["start"].to_numpy(float),
        episodes["stop"].to_numpy(float),
        episodes["event"].to_numpy(int),
        episodes[["age"]].to_numpy(float),
        params,
    )
    inside = np.searchsorted(failures, episodes["stop"], "right") - np.searchsorted(
        failures, episodes["start"], "right"
    )
    assert (inside == 0).sum() > 10
    assert np.all(residuals[inside == 0] == 0.0)
    assert np.abs(residuals[inside > 0]).max() > 1.0
    # at the maximum partial likelihood estimate the score, their sum, is zero
    assert abs(residuals.sum()) < 1e-8 * np.abs(residuals).sum()


# ---------------------------------------------------------------------------------------------
# 2. A case small enough to do by hand.

# (entry, stop, event, x): failures at 2 (A), 3 (C and F, a Breslow tie) and 5 (E). D's interval
# (2, 2.5] holds no failure time; E enters at 3, the time C and F fail, so is not at risk then.
HAND = pd.DataFrame(
    [(0, 2, 1, 1), (0, 4, 0, 0), (1, 3, 1, 2), (2, 2.5, 0, 3), (3, 5, 1, 1), (0, 3, 1, 0)],
    columns=["start", "stop", "event", "x"],
    index=list("ABCDEF"),
).astype({"start": float, "stop": float, "x": float})


def hand_residuals(beta: float) -> np.ndarray:
    return hazard._score_residuals(
        HAND["start"].to_numpy(),
        HAND["stop"].to_numpy(),
        HAND["event"].to_numpy(),
        HAND[["x"]].to_numpy(),
        np.array([beta]),
    )[:, 0]


def test_score_residuals_match_the_hand_calculation():
    """At β = 0 every r_i = 1, so x̄_j is the risk set's mean and dΛ_j = d_j / |R_j|.

    t = 2: R = {A, B, C, F}, x̄ = 3/4, dΛ = 1/4.   t = 3: R = {B, C, F}, x̄ = 2/3, dΛ = 2/3.
    t = 5: R = {E}, x̄ = 1, dΛ = 1.
    A: (1 − 3/4) − (1 − 3/4)/4 = 27/144.   B: −[(0 − 3/4)/4 + (0 − 2/3)(2/3)] = 91/144.
    C: (2 − 2/3) − [(2 − 3/4)/4 + (2 − 2/3)(2/3)] = 19/144.   D: in no risk set, 0.
    E: (1 − 1) − (1 − 1) = 0.   F: (0 − 2/3) − [(0 − 3/4)/4 + (0 − 2/3)(2/3)] = −5/144.
    They sum to the score, Σ (x_failed − x̄) = 1/4 + 4/3 − 2/3 + 0 = 11/12.
    """
    by_hand = np.array([27, 91, 19, 0, 0, -5]) / 144
    assert hand_residuals(0.0) == pytest.approx(by_hand, abs=1e-15)
    assert hand_residuals(0.0).sum() == pytest.approx(11 / 12, abs=1e-15)

    # statsmodels' score at β = 0 agrees (its entry is closed, so E's entry 3 is given as 5,
    # its first failure time after 3; D is left out as it is in no risk set)
    rows = HAND.drop(index="D")
    entry = rows["start"].where(rows.index != "E", 5.0)
    model = PHReg(rows["stop"], rows[["x"]], status=rows["event"], entry=entry, ties="breslow")
    assert model.score(np.zeros(1))[0] == pytest.approx(11 / 12, abs=1e-12)

    # and its score residuals keep D, whose (2, 2.5] holds no failure, in the risk set at t = 2
    kept = PHReg(HAND["stop"], HAND[["x"]], status=HAND["event"], entry=HAND["start"] + 1e-9)
    assert abs(kept.score_residuals(np.zeros(1))[3, 0]) > 0.1


@pytest.mark.parametrize("beta", [-0.8, 0.4, 1.3])
def test_score_residuals_match_the_explicit_loop_away_from_zero(beta):
    exog = HAND[["x"]].to_numpy()
    risk = np.exp(beta * exog[:, 0])
    failures = sorted(set(HAND.loc[HAND["event"] == 1, "stop"]))
    residual = np.zeros(len(HAND))
    for t in failures:
        members = [i for i in range(len(HAND)) if HAND["start"].iloc[i] < t <= HAND["stop"].iloc[i]]
        dying = [i for i in members if HAND["stop"].iloc[i] == t and HAND["event"].iloc[i] == 1]
        s0 = sum(risk[i] for i in members)
        xbar = sum(risk[i] * exog[i, 0] for i in members) / s0
        for i in members:
            residual[i] += ((i in dying) - risk[i] * len(dying) / s0) * (exog[i, 0] - xbar)
    assert hand_residuals(beta) == pytest.approx(residual, abs=1e-14)
    assert hand_residuals(beta)[3] == 0.0


# ---------------------------------------------------------------------------------------------
# 3. Delayed entry proper: left truncation, with ties of entries and failure times.


def test_delayed_entry_matches_the_explicit_lin_wei_sandwich(heart):
    """Left-truncated heart data, split, with a time-varying covariate, clustered in 10 groups.

    Half the patients enter late (a whole day in (0, survival), so some entries fall exactly on
    a failure time, where the patient is not yet at risk); everyone is split at day 100 and at
    four random days, and ``after_100 = age × [t > 100]`` varies within a patient. The fit and the
    sandwich must equal the loop-by-loop definitions to rounding (Newton to 1e-13).
    """
    rng = np.random.default_rng(11)
    late = rng.random(len(heart)) < 0.5
    entry = np.where(late, np.floor(rng.random(len(heart)) * heart["stop"]), 0.0)
    truncated = heart.assign(start=entry)
    truncated = truncated[truncated["start"] < truncated["stop"]]
    cuts = {i: [100.0, *rng.integers(1, 1800, 4).astype(float)] for i in truncated["id"]}
    episodes = split_at(truncated, lambda s: cuts[s["id"]])
    episodes["age"] -= 46.0
    episodes["after_100"] = episodes["age"] * (episodes["start"] >= 100)
    episodes["cluster"] = episodes["id"] % 10
    failures = set(episodes.loc[episodes["event"] == 1, "stop"])
    assert (truncated["start"] > 0).sum() > 25
    assert truncated["start"].isin(failures).sum() >= 3  # entries tied with failure times
    assert without_failure_time(episodes) > 10

    columns = ["age", "after_100"]
    params, cov = hazard.cox_cluster_robust(episodes, episodes[columns], episodes["cluster"])
    beta, residuals, explicit_cov = explicit_lin_wei(
        episodes["start"].to_numpy(float),
        episodes["stop"].to_numpy(float),
        episodes["event"].to_numpy(int),
        episodes[columns].to_numpy(float),
        episodes["cluster"].to_numpy(),
    )
    assert params == pytest.approx(beta, rel=1e-7, abs=1e-10)
    assert cov == pytest.approx(explicit_cov, rel=1e-7)
    ours = hazard._score_residuals(
        episodes["start"].to_numpy(float),
        episodes["stop"].to_numpy(float),
        episodes["event"].to_numpy(int),
        episodes[columns].to_numpy(float),
        beta,
    )
    assert ours == pytest.approx(residuals, abs=1e-10)
