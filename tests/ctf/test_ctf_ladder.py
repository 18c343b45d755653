"""The Ladder (Blum & Hardt 2015) against a hand computation, and the boosting attack's gap."""
import math

import numpy as np
import pytest

from petridish.ctf.ladder import TOLERANCE, nice_floor, release_grid, replay, round_to_step, step


def test_ladder_accepts_only_beyond_one_standard_error():
    rng = np.random.default_rng(0)
    n = 500
    first = rng.integers(0, 2, n).astype(float)
    st = step("ladder", first, None, None)
    grid = release_grid(first)
    assert grid == 0.02 == nice_floor(0.5 / math.sqrt(n))
    assert st.accepted and st.released == pytest.approx(first.mean(), abs=grid / 2 + 1e-9)
    # a second vector barely better than the first (40 errors fixed, 37 new ones):
    # the gain is below one paired standard error -> no change
    second = first.copy()
    second[np.flatnonzero(first)[:40]] = 0.0
    second[np.flatnonzero(first == 0)[:37]] = 1.0
    se = np.std(second - first, ddof=1) / math.sqrt(n)
    assert first.mean() - second.mean() < se
    st2 = step("ladder", second, first, st.best_loss)
    assert not st2.accepted and st2.released == st.released
    # clearly better: accepted, released = its exact mean
    third = first.copy()
    third[np.flatnonzero(first)[:60]] = 0.0
    se3 = np.std(third - first, ddof=1) / math.sqrt(n)
    assert first.mean() - third.mean() > se3
    st3 = step("ladder", third, first, st.best_loss)
    assert st3.accepted and st3.released == pytest.approx(third.mean(), abs=grid / 2 + 1e-9)
    assert round(st3.released / grid, 9) == round(st3.released / grid)      # on the grid


@pytest.mark.parametrize("errors", [10, 14])
def test_single_example_improvement_is_refused_in_exact_arithmetic(errors):
    """Issue 11, item 14: with 10 or 14 public errors out of 500, fixing one example made
    float64 `mean(l) < R - s/sqrt(n)` true (both sides are 1/n apart exactly: a tie)."""
    n = 500
    best = np.zeros(n)
    best[:errors] = 1.0
    better = best.copy()
    better[0] = 0.0
    s = np.std(better - best, ddof=1)
    assert better.mean() < best.mean() - s / math.sqrt(n)        # the old float test: wrongly accepted
    st = step("ladder", better, best, best.mean())
    assert not st.accepted and st.released == best.mean()
    two = better.copy()
    two[1] = 0.0                                                # two fixed: (B - E)^2 = 4 > a = 2
    assert step("ladder", two, best, best.mean()).accepted


def test_every_single_example_change_is_refused_and_float_ties_use_the_tolerance():
    n = 500
    for errors in range(1, n):
        best = np.zeros(n)
        best[:errors] = 1.0
        better = best.copy()
        better[0] = 0.0
        assert not step("ladder", better, best, best.mean()).accepted, errors
        # the same tie with non-0-1 losses goes through the float test and its stated tolerance
        assert not step("ladder", 0.25 * better, 0.25 * best, 0.25 * best.mean()).accepted, errors
    # a gain beyond the threshold by more than the tolerance is accepted on the float path
    best = np.full(n, 0.3)
    assert step("ladder", best - 10 * TOLERANCE, best, 0.3).accepted
    assert not step("ladder", best - TOLERANCE / 10, best, 0.3).accepted


def test_first_release_is_rounded_never_exact():
    """Issue 11, item 2: a throwaway account's first score must not reveal the exact mean."""
    n = 500
    base = np.zeros(n)
    base[:61] = 1.0                             # 61 errors: mean 0.122
    probe = base.copy()
    probe[100] = 1.0                            # one more error: 0.124
    a, b = step("ladder", base, None, None), step("ladder", probe, None, None)
    assert a.released == b.released == 0.12    # the single-example difference is invisible
    assert a.released != base.mean()
    # non-0-1 losses: rounded to their own standard error's 1-2-5 step
    losses = np.linspace(0, 2, n)
    assert release_grid(losses) == nice_floor(np.std(losses, ddof=1) / math.sqrt(n)) == 0.02
    assert step("ladder", losses, None, None).released == 1.0


def test_fixed_ladder_steps_and_rounds():
    base = np.full(100, 0.5)
    steps = replay("fixed-ladder", [base, base - 0.005, base - 0.03], eta=0.01)
    assert [s.accepted for s in steps] == [True, False, True]
    assert [s.released for s in steps] == [0.5, 0.5, 0.47]
    assert round_to_step(0.4649, 0.01) == 0.46


def test_naive_releases_exact_scores():
    steps = replay("naive", [np.full(10, 0.3), np.full(10, 0.4)])
    assert [s.released for s in steps] == pytest.approx([0.3, 0.4])
    assert steps[1].best_loss == pytest.approx(0.3)


def boosting_attack(mode, *, n=4000, k=400, seed=0, decimals=5):
    """Hardt's attack: k random label vectors, keep those shown better than chance, submit the majority.

    Returns (apparent loss shown on the board, true loss of the final vector on fresh labels)."""
    rng = np.random.default_rng(seed)
    y_public, y_fresh = rng.integers(0, 2, n), rng.integers(0, 2, n)
    guesses = rng.integers(0, 2, (k, n))
    losses = (guesses != y_public).astype(float)
    best_l, best = None, None
    shown = []
    for l in losses:
        st = step(mode, l, best_l, best)
        if st.accepted:
            best_l = l
        best = st.best_loss
        shown.append(round(st.released, decimals))
    keep = np.array(shown) < 0.5
    final = (guesses[keep].mean(axis=0) > 0.5).astype(int)
    final_l = (final != y_public).astype(float)
    last = step(mode, final_l, best_l, best)
    return round(last.released, decimals), float((final != y_fresh).mean())


def test_boosting_attack_fools_naive_board_but_not_the_ladder():
    # reference (REFERENCES.md, n=4000, k=400): naive shows ~0.427, Ladder ~0.484, true 0.50
    naive = [boosting_attack("naive", seed=s) for s in range(3)]
    ladder = [boosting_attack("ladder", seed=s) for s in range(3)]
    naive_shown = np.mean([a for a, _ in naive])
    ladder_shown = np.mean([a for a, _ in ladder])
    true = np.mean([t for _, t in naive + ladder])
    assert 0.41 < naive_shown < 0.445, naive_shown
    assert 0.47 < ladder_shown < 0.50, ladder_shown
    assert abs(true - 0.5) < 0.01, true          # the attack learned nothing real
    assert ladder_shown - naive_shown > 0.03      # the gap the Ladder closes
