"""Tests for rankexp.eval.correlation: Kendall tau, tau_ap (Yilmaz et al. 2008), RBO (Webber et al. 2010)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from rankexp.eval.correlation import (
    kendall_tau,
    rbo,
    rbo_min,
    run_correlation,
    tau_ap,
    tau_ap_symmetric,
)

# Items A..E; the reference ranking is A > B > C > D > E.
REF = [5, 4, 3, 2, 1]  # scores of A, B, C, D, E


def _scores(order: str) -> list[float]:
    """Scores for items A..E that rank them in ``order`` (best first)."""
    return [float(len(order) - order.index(item)) for item in "ABCDE"]


def _tau_ap_untied(reference: np.ndarray, estimate: np.ndarray) -> float:
    """The paper's formula, literally, for rankings without ties (test oracle)."""
    order = np.argsort(-estimate)
    n = len(order)
    total = 0.0
    for i in range(1, n):
        c = sum(reference[order[k]] > reference[order[i]] for k in range(i))
        total += c / i
    return 2 / (n - 1) * total - 1


# --- Kendall tau -------------------------------------------------------------------------------


def test_kendall_tau_hand_computation():
    # Estimate C, A, E, B, D: reference ranks in that order 3, 1, 5, 2, 4.
    # Discordant pairs (3,1) (3,2) (5,2) (5,4) = 4 of 10, concordant 6: tau = (6 - 4)/10 = 0.2.
    assert kendall_tau(REF, _scores("CAEBD")) == pytest.approx(0.2)


def test_kendall_tau_is_tau_b_with_ties():
    x = [1, 2, 2, 3, 4, 4, 5]
    y = [2, 1, 3, 3, 5, 4, 4]
    assert kendall_tau(x, y) == pytest.approx(stats.kendalltau(x, y, variant="b").statistic)
    # tau-b by hand for a tiny tied case: x = [1, 2, 2], y = [1, 2, 3]
    # pairs (1,2): concordant, (1,3): concordant, (2,3): tied in x only.
    # tau_b = (2 - 0) / sqrt((3 - 1) · 3) = 2 / sqrt(6)
    assert kendall_tau([1, 2, 2], [1, 2, 3]) == pytest.approx(2 / math.sqrt(6))


# --- tau_ap ------------------------------------------------------------------------------------


def test_tau_ap_hand_worked_example():
    # Reference A > B > C > D > E, estimate C, A, E, B, D. Walk the estimate:
    #   i=2 A: above {C}; C above A in the reference? no                 C(2) = 0 → 0/1
    #   i=3 E: above {C, A}; both above E in the reference                C(3) = 2 → 2/2
    #   i=4 B: above {C, A, E}; only A is above B                         C(4) = 1 → 1/3
    #   i=5 D: above {C, A, E, B}; C, A, B are above D                    C(5) = 3 → 3/4
    # sum = 0 + 1 + 1/3 + 3/4 = 25/12;  tau_ap = 2/4 · 25/12 - 1 = 1/24
    assert tau_ap(REF, _scores("CAEBD")) == pytest.approx(1 / 24)


def test_tau_ap_is_asymmetric_and_symmetric_variant():
    # Roles swapped: reference C > A > E > B > D, estimate A, B, C, D, E:
    #   i=2 B: above {A}; A above B in the reference                      1/1
    #   i=3 C: above {A, B}; C is first in the reference                  0/2
    #   i=4 D: above {A, B, C}; D is last in the reference                3/3
    #   i=5 E: above {A, B, C, D}; only C, A are above E                  2/4
    # sum = 2.5;  tau_ap = 2/4 · 2.5 - 1 = 1/4
    assert tau_ap(_scores("CAEBD"), REF) == pytest.approx(1 / 4)
    # symmetric: (1/24 + 1/4) / 2 = 7/48
    assert tau_ap_symmetric(REF, _scores("CAEBD")) == pytest.approx(7 / 48)
    assert tau_ap_symmetric(_scores("CAEBD"), REF) == pytest.approx(7 / 48)


def test_tau_ap_identical_and_reversed():
    x = np.array([0.9, 0.1, 0.5, 0.3, 0.7, 0.2])
    assert tau_ap(x, x) == pytest.approx(1.0)
    assert tau_ap(x, -x) == pytest.approx(-1.0)
    assert tau_ap(x, 2 * x + 1) == pytest.approx(1.0)  # only the order matters


def test_tau_ap_penalises_swaps_at_the_top_more_than_kendall():
    # One adjacent swap at the top (B, A, C, D, E) or at the bottom (A, B, C, E, D):
    # Kendall tau: 1 discordant pair of 10 in both cases → (9 - 1)/10 = 0.8.
    # tau_ap top swap:    terms 0/1, 2/2, 3/3, 4/4 → sum 3    → 2/4 · 3 - 1    = 0.5
    # tau_ap bottom swap: terms 1/1, 2/2, 3/3, 3/4 → sum 3.75 → 2/4 · 3.75 - 1 = 0.875
    top, bottom = _scores("BACDE"), _scores("ABCED")
    assert kendall_tau(REF, top) == pytest.approx(0.8)
    assert kendall_tau(REF, bottom) == pytest.approx(0.8)
    assert tau_ap(REF, top) == pytest.approx(0.5)
    assert tau_ap(REF, bottom) == pytest.approx(0.875)


def test_tau_ap_matches_the_papers_formula_on_random_rankings():
    rng = np.random.default_rng(0)
    for _ in range(20):
        x, y = rng.random(12), rng.random(12)
        assert tau_ap(x, y) == pytest.approx(_tau_ap_untied(x, y))


def test_tau_ap_matches_published_ircor_example():
    # Example in the documentation of the ircor R package (Urbano & Marrero), whose
    # tauAP(x, y) takes x as the true scores: tauAP = 0.3928571; with y rounded to one decimal
    # (items 4 and 5 tie at 0.1) tauAP_a = 0.39903.
    x = [0.67, 0.45, 0.29, 0.12, 0.57, 0.24, 0.94, 0.75, 0.08, 0.54]
    y = [0.48, 0.68, 0.32, 0.09, 0.06, 0.61, 0.87, 0.22, 0.44, 0.84]
    assert tau_ap(x, y) == pytest.approx(0.3928571, abs=1e-7)
    assert tau_ap(x, np.round(y, 1)) == pytest.approx(0.39903, abs=1e-5)


def test_tau_ap_ties_hand_computed():
    # Ties in the estimate: reference A > B > C, estimate (A = B) > C. The two tie-breaks:
    #   A, B, C: terms 1/1, 2/2 → tau_ap = 2/2 · 2 - 1 = 1
    #   B, A, C: terms 0/1, 2/2 → tau_ap = 2/2 · 1 - 1 = 0      expected value 0.5
    assert tau_ap([3, 2, 1], [1, 1, 0]) == pytest.approx(0.5)
    # Ties in the reference: (A = B) > C, estimate A, B, C. B's only predecessor A is tied
    # with it in the reference: half credit. terms 0.5/1, 2/2 → 2/2 · 1.5 - 1 = 0.5
    assert tau_ap([1, 1, 0], [3, 2, 1]) == pytest.approx(0.5)


def test_tau_ap_ties_are_the_expectation_over_random_tie_breaking():
    x = np.array([2.0, 1.0, 1.0, 0.0])  # ties in the reference
    y = np.array([1.0, 1.0, 0.0, 1.0])  # ties in the estimate
    perms = [np.array(p) * 1e-3 for p in itertools.permutations(range(4))]
    expected = np.mean([_tau_ap_untied(x + px, y + py) for px in perms for py in perms])
    assert tau_ap(x, y) == pytest.approx(expected, abs=1e-12)


def test_tau_ap_input_validation():
    with pytest.raises(ValueError, match="equal length"):
        tau_ap([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="at least 2"):
        tau_ap([1], [1])
    with pytest.raises(ValueError, match="finite"):
        tau_ap([1, float("nan")], [1, 2])


# --- RBO ---------------------------------------------------------------------------------------


def test_rbo_identical_and_disjoint():
    items = list("abcdefg")
    assert rbo(items, items, p=0.9) == pytest.approx(1.0)
    assert rbo(items, items[:3], p=0.9) == pytest.approx(1.0)  # agreement 1 at every seen depth
    assert rbo(list("abc"), list("xyz"), p=0.9) == 0.0
    assert rbo(list("abc"), list("vwxyz"), p=0.5) == 0.0


def test_rbo_ext_even_lengths_hand_computed():
    # S = a b c, T = b a d, p = 0.5, so (1-p)/p = 1.
    #   d=1: {a} ∩ {b} = ∅           X_1 = 0, A_1 = 0
    #   d=2: {a,b} ∩ {b,a}            X_2 = 2, A_2 = 1
    #   d=3: {a,b,c} ∩ {b,a,d}        X_3 = 2, A_3 = 2/3
    # Eq. 30: sum A_d p^d = 0 + 1/4 + (2/3)(1/8) = 1/3;  + A_3 p^3 = 1/12  → 5/12
    assert rbo(list("abc"), list("bad"), p=0.5) == pytest.approx(5 / 12)


def test_rbo_ext_uneven_lengths_hand_computed():
    # S = a b (s = 2), L = b c a d (l = 4), p = 0.5.
    #   X_1 = |{a} ∩ {b}| = 0, X_2 = |{a,b} ∩ {b,c}| = 1,
    #   X_3 = |{a,b} ∩ {b,c,a}| = 2, X_4 = |{a,b} ∩ {b,c,a,d}| = 2
    # Eq. 32:
    #   sum_{d=1..4} X_d/d p^d        = 0 + (1/2)(1/4) + (2/3)(1/8) + (2/4)(1/16) = 24/192 + 16/192 + 6/192
    #   sum_{d=3..4} X_s(d-s)/(s d) p^d = (1·1/6)(1/8) + (1·2/8)(1/16)            = 4/192 + 3/192
    #   ((X_4 - X_2)/4 + X_2/2) p^4   = (1/4 + 1/2)(1/16)                         = 9/192
    #   total = 62/192 = 31/96
    assert rbo(list("ab"), list("bcad"), p=0.5) == pytest.approx(31 / 96)
    assert rbo(list("bcad"), list("ab"), p=0.5) == pytest.approx(31 / 96)  # symmetric


def test_rbo_p_dependence_top_versus_bottom_swap():
    # Swap at the top: a b c d vs b a c d → A = 0, 1, 1, 1. Eq. 30:
    #   (1-p)/p (p^2 + p^3 + p^4) + p^4 = (1-p)(p + p^2 + p^3) + p^4 = p
    # Swap at the bottom: a b c d vs a b d c → A = 1, 1, 2/3, 1:
    #   (1-p)(1 + p + 2/3 p^2 + p^3) + p^4 = 1 - p^2 (1 - p)/3
    top, bottom = (list("abcd"), list("bacd")), (list("abcd"), list("abdc"))
    for p in (0.5, 0.7, 0.9):
        assert rbo(*top, p=p) == pytest.approx(p)
        assert rbo(*bottom, p=p) == pytest.approx(1 - p * p * (1 - p) / 3)
    # p = 0.9: 0.9 and 0.973; p = 0.5: 0.5 and 0.958333
    assert rbo(*bottom, p=0.9) == pytest.approx(0.973)
    assert rbo(*bottom, p=0.5) == pytest.approx(0.9583333, abs=1e-7)
    assert rbo(*top, p=0.5) < rbo(*top, p=0.9)


def test_rbo_ext_equals_definition_with_extrapolated_agreement():
    # Eq. 7 summed far out, with the agreement RBO_EXT assumes beyond what is seen.
    rng = np.random.default_rng(1)
    pool = list(range(40))
    for s, l in [(6, 6), (5, 12), (9, 14)]:
        a = list(rng.permutation(pool)[:s])
        b = list(rng.permutation(pool)[:l])
        short, long_ = (a, b) if len(a) <= len(b) else (b, a)
        p = 0.8

        def overlap(d: int) -> int:
            return len(set(short[:d]) & set(long_[:d]))

        x_s = overlap(s)
        agreement = []
        for d in range(1, 400):
            if d <= s:
                agreement.append(overlap(d) / d)
            elif d <= l:
                agreement.append((overlap(d) + x_s * (d - s) / s) / d)
            else:
                agreement.append(agreement[l - 1])
        definition = (1 - p) * sum(p ** (d - 1) * a_d for d, a_d in enumerate(agreement, start=1))
        assert rbo(a, b, p=p) == pytest.approx(definition, abs=1e-12)


def test_rbo_min_hand_computed_and_bounds():
    # S = a b c, T = b a d, p = 0.5, k = 3: X = 0, 2, 2 and X_k = 2. Eq. 11:
    #   sum (X_d - X_k)/d p^d = (0 - 2)/1 · 1/2 = -1;  -X_k ln(1 - p) = 2 ln 2
    #   RBO_MIN = 1 · (-1 + 2 ln 2) = 0.386294
    assert rbo_min(list("abc"), list("bad"), p=0.5) == pytest.approx(-1 + 2 * math.log(2))
    assert rbo_min(list("abc"), list("bad"), p=0.5) < rbo(list("abc"), list("bad"), p=0.5)
    assert rbo_min(list("abc"), list("xyz"), p=0.9) == 0.0
    # depth 1: X_1 = 0 → 0
    assert rbo_min(list("abc"), list("bad"), p=0.5, depth=1) == 0.0


def test_rbo_validation():
    with pytest.raises(ValueError, match="twice"):
        rbo(list("aba"), list("abc"))
    with pytest.raises(ValueError, match="empty"):
        rbo([], list("abc"))
    with pytest.raises(ValueError, match="between 0 and 1"):
        rbo(list("ab"), list("ab"), p=1.0)
    with pytest.raises(ValueError, match="depth"):
        rbo_min(list("abc"), list("ab"), depth=3)


# --- run_correlation ---------------------------------------------------------------------------


def test_run_correlation_per_query():
    run_a = {
        "q1": {"A": 5.0, "B": 4.0, "C": 3.0, "D": 2.0, "E": 1.0},
        "q2": {"x": 1.0, "y": 0.5},
        "q3": {"z": 1.0},
    }
    run_b = {
        # estimate C, A, E, B, D (see the tau_ap hand-worked example) plus an extra doc F
        "q1": {"C": 0.9, "A": 0.8, "F": 0.75, "E": 0.7, "B": 0.6, "D": 0.5},
        # a tie at 1.0: for tau it stays a tie
        "q2": {"x": 1.0, "y": 1.0},
        "q4": {"w": 1.0},
        "q5": {},  # no documents: treated as absent
    }
    result = run_correlation(run_a, run_b, p=0.5)
    assert sorted(result) == ["q1", "q2"]
    assert result.only_in_a == ("q3",)
    assert result.only_in_b == ("q4",)

    q1 = result["q1"]
    assert q1["n_common"] == 5 and q1["n_docs"] == 6
    # F is missing from A: it goes below all of A's documents (alone, so no tie). Over the union
    # the reference is A B C D E F and the estimate C A F E B D; the reference ranks in estimate
    # order are 3 1 6 5 2 4: discordant pairs (3,1) (3,2) (6,5) (6,2) (6,4) (5,2) (5,4) = 7 of 15,
    # concordant 8 → tau = (8 - 7) / 15.
    assert q1["kendall_tau"] == pytest.approx(1 / 15)
    # tau_ap, walking the estimate: A: 0/1; F: C, A above → 2/2; E: C, A → 2/3; B: A → 1/4;
    # D: C, A, B → 3/5. Sum 151/60; tau_ap = 2/5 · 151/60 - 1 = 1/150.
    assert q1["tau_ap"] == pytest.approx(1 / 150)
    # RBO over the full lists A B C D E vs C A F E B D (p = 0.5):
    #   X_1 = 0, X_2 = |{A,B} ∩ {C,A}| = 1, X_3 = |{A,B,C} ∩ {C,A,F}| = 2,
    #   X_4 = |{A,B,C,D} ∩ {C,A,F,E}| = 2, X_5 = |{A..E} ∩ {C,A,F,E,B}| = 4,
    #   X_6 = |{A..E} ∩ all of b| = 5   (s = 5, l = 6)
    #   sum X_d/d p^d = 0 + 1/2·1/4 + 2/3·1/8 + 2/4·1/16 + 4/5·1/32 + 5/6·1/64
    #   sum_{d=6} X_5 (6-5)/(5·6) p^6 = 4/30 · 1/64
    #   ((X_6 - X_5)/6 + X_5/5) p^6 = (1/6 + 4/5) · 1/64
    expected = (
        1 / 8 + 1 / 12 + 1 / 32 + 1 / 40 + 5 / 384
        + (4 / 30) / 64
        + (1 / 6 + 4 / 5) / 64
    )
    assert q1["rbo"] == pytest.approx(expected)

    q2 = result["q2"]
    # run_b ties x and y: tau-b is undefined (one ranking ties everything), said so
    assert math.isnan(q2["kendall_tau"])
    assert result.undefined["q2"] == {"kendall_tau": "one ranking ties all documents (tau-b undefined)"}
    # tau_ap: the expectation over the two orders of the tie: x, y → +1; y, x → -1 → 0
    assert q2["tau_ap"] == pytest.approx(0.0)
    # RBO has no ties: the lists in trec_eval order, x y vs y x ("y" > "x"), p = 0.5:
    # X_1 = 0, X_2 = 2. Eq. 30: 1 · (0 · 1/2 + 1 · 1/4) + 1 · 1/4 = 0.5
    assert q2["rbo"] == pytest.approx(0.5)

    summary = result.summary()
    assert summary["kendall_tau"] == {"mean": pytest.approx(1 / 15), "queries": 1,
                                      "dropped": {"one ranking ties all documents (tau-b undefined)": 1}}
    assert summary["tau_ap"]["queries"] == 2 and summary["tau_ap"]["mean"] == pytest.approx(1 / 300)
    assert summary["rbo"]["queries"] == 2 and summary["rbo"]["dropped"] == {}


def test_run_correlation_depth_and_disjoint_tops():
    run_a = {"q1": {"a": 3.0, "b": 2.0, "c": 1.0}}
    run_b = {"q1": {"c": 3.0, "a": 2.0, "b": 1.0}}
    full = run_correlation(run_a, run_b)["q1"]
    assert full["n_common"] == 3
    cut = run_correlation(run_a, run_b, depth=1)["q1"]
    # top 1: a vs c. Union {a, c}; each is missing from the other's cut ranking, so it sits below:
    # A: a > c, B: c > a → one discordant pair.
    assert cut["n_common"] == 0 and cut["n_docs"] == 2
    assert cut["kendall_tau"] == pytest.approx(-1.0) and cut["tau_ap"] == pytest.approx(-1.0)
    assert cut["rbo"] == 0.0
    single = run_correlation({"q": {"a": 1.0}}, {"q": {"a": 5.0}})
    assert math.isnan(single["q"]["kendall_tau"]) and math.isnan(single["q"]["tau_ap"])
    assert single.summary()["tau_ap"]["dropped"] == {"fewer than 2 documents in the two rankings": 1}
    with pytest.raises(ValueError, match="depth"):
        run_correlation(run_a, run_b, depth=0)


# --- ties: the example, scipy, and missing documents -----------------------------------


def test_three_tied_documents_against_a_strict_order():
    # d1 above three tied documents, against the strict order d1 > d2 > d3 > d4.
    # Pairs: (d1, d2), (d1, d3), (d1, d4) concordant, the 3 pairs among d2..d4 tied in A.
    # tau_b = (3 - 0) / sqrt((6 - 3) · (6 - 0)) = 3 / sqrt(18) = 1/sqrt(2) = 0.7071.
    # Breaking the ties by doc id first (what rankexp did) gives d4 d3 d2: 3 - 3 = 0.
    a = {"q": {"d1": 2.0, "d2": 1.0, "d3": 1.0, "d4": 1.0}}
    b = {"q": {"d1": 4.0, "d2": 3.0, "d3": 2.0, "d4": 1.0}}
    assert kendall_tau([2, 1, 1, 1], [4, 3, 2, 1]) == pytest.approx(1 / math.sqrt(2))
    result = run_correlation(a, b)["q"]
    assert result["kendall_tau"] == pytest.approx(1 / math.sqrt(2))
    # tau_ap (A the reference, tied items half credit): walking B, d2: d1 above → 1/1;
    # d3: d1 (1) + d2 tied (1/2) → 1.5/2; d4: 1 + 1/2 + 1/2 → 2/3. 2/3 · (1 + 3/4 + 2/3) - 1 = 11/18
    assert result["tau_ap"] == pytest.approx(11 / 18)
    # ties are judged at the precision trec_eval compares (float32): 1 + 1e-12 ties with 1.0
    near = {"q": {"d1": 2.0, "d2": 1.0 + 1e-12, "d3": 1.0, "d4": 1.0 - 1e-13}}
    assert run_correlation(near, b)["q"]["kendall_tau"] == pytest.approx(1 / math.sqrt(2))


def _tau_b_by_pairs(x, y):
    """Kendall's 1945 tau-b from its definition, pair by pair (test oracle)."""
    n = len(x)
    s = n1 = n2 = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
            s += dx * dy
            n1 += dx == 0
            n2 += dy == 0
    n0 = n * (n - 1) / 2
    return s / math.sqrt((n0 - n1) * (n0 - n2))


def test_kendall_tau_b_against_scipy_and_definition_on_random_ties():
    rng = np.random.default_rng(5)
    for trial in range(200):
        n = int(rng.integers(2, 40))
        x = rng.integers(0, int(rng.integers(2, 6)), n).astype(float)  # few levels: many ties
        y = rng.integers(0, int(rng.integers(2, 8)), n).astype(float)
        ours = kendall_tau(x, y) if len(set(x)) > 1 and len(set(y)) > 1 else None
        if ours is None:
            assert math.isnan(kendall_tau(x, y))
            continue
        assert ours == pytest.approx(stats.kendalltau(x, y, variant="b").statistic, abs=1e-12)
        assert ours == pytest.approx(_tau_b_by_pairs(x, y), abs=1e-12)
    big = rng.integers(0, 50, 3000).astype(float)  # the blocked computation
    other = big + rng.integers(0, 3, 3000)
    assert kendall_tau(big, other) == pytest.approx(stats.kendalltau(big, other, variant="b").statistic, abs=1e-12)


def test_missing_documents_are_a_bottom_tie():
    # A ranks a > b > c; B ranks c > d > a (b missing from B, d missing from A).
    # Union a b c d. A: a 3, b 2, c 1, d 0 (missing → below all). B: c 3, d 2, a 1, b 0.
    a = {"q": {"a": 3.0, "b": 2.0, "c": 1.0}}
    b = {"q": {"c": 3.0, "d": 2.0, "a": 1.0}}
    result = run_correlation(a, b)["q"]
    x, y = [3, 2, 1, 0], [1, 0, 3, 2]
    assert result["kendall_tau"] == pytest.approx(stats.kendalltau(x, y).statistic)
    # by hand: pairs (a,b) +, (a,c) -, (a,d) -, (b,c) -, (b,d) -, (c,d) + → (2 - 4) / 6
    assert result["kendall_tau"] == pytest.approx(-1 / 3)
    assert result["tau_ap"] == pytest.approx(tau_ap(x, y))
    # two documents missing from the same ranking tie with each other
    two = run_correlation({"q": {"a": 2.0, "b": 1.0}}, {"q": {"b": 2.0, "c": 1.0, "d": 0.5}})["q"]
    # union a b c d; A: a 2, b 1, c 0, d 0; B: b 3, c 2, d 1, a 0
    assert two["kendall_tau"] == pytest.approx(stats.kendalltau([2, 1, 0, 0], [0, 3, 2, 1]).statistic)
    # tau_ap is the expectation over the orders of the ties (here: c, d tied in the reference)
    perms = [(2, 1, 0.1, 0.0), (2, 1, 0.0, 0.1)]
    assert two["tau_ap"] == pytest.approx(np.mean([_tau_ap_untied(np.array(p), np.array([0, 3, 2, 1.0])) for p in perms]))
