"""Membership inference: AUC against sklearn, advantage and TPR@FPR on hand-built scores, DeLong
coverage, LiRA's per-example calibration on a closed-form toy, and the attack against a memorizing
MLP (AUC > 0.6) and a model that saw none of the members (CI contains 0.5)."""
import math

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.metrics import roc_auc_score, roc_curve

from petridish.data import gaussian_mixture
from petridish.errors import InvalidParameterError
from petridish.instruments.membership import (advantage, attack_metrics, delong_ci, lira_attack, lira_scores,
                                               logit_confidence, loss_threshold_attack, roc_auc, shadow_attack,
                                               tpr_at_fpr)
from petridish.models.registry import build_model
from petridish.train import train

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_equals_sklearn_with_ties(seed):
    g = np.random.default_rng(seed)
    m = g.random(300) < 0.3
    s = (g.normal(size=300) + 0.7 * m).round(1)              # many ties
    assert roc_auc(s, m) == pytest.approx(roc_auc_score(m, s), abs=1e-12)
    assert delong_ci(s, m)[0] == pytest.approx(roc_auc_score(m, s), abs=1e-12)
    f, t, _ = roc_curve(m, s)
    assert advantage(s, m) == pytest.approx((t - f).max(), abs=1e-12)
    for a in (0.01, 0.05, 0.2):
        assert tpr_at_fpr(s, m, a) == pytest.approx(t[f <= a].max(), abs=1e-12)


def test_advantage_and_tpr_on_hand_built_scores():
    # members 0.9 0.8 0.7 0.3, non-members 0.6 0.5 0.4 0.2 0.1: above 0.65, TPR 3/4 at FPR 0
    s = np.array([0.9, 0.8, 0.7, 0.3, 0.6, 0.5, 0.4, 0.2, 0.1])
    m = np.arange(9) < 4
    assert advantage(s, m) == pytest.approx(0.75)
    assert tpr_at_fpr(s, m, 0.01) == pytest.approx(0.75)
    assert tpr_at_fpr(s, m, 0.5) == pytest.approx(0.75)      # FPR 3/5 is the next step: TPR 1 needs 0.6
    assert tpr_at_fpr(s, m, 0.61) == pytest.approx(1.0)
    assert roc_auc(s, m) == pytest.approx(17 / 20)           # 20 pairs, 3 members beat all 5, 0.3 beats 2
    # a tied block cannot be split: members {1, 1, 0}, non-members {1, 0, 0}
    s, m = np.array([1.0, 1, 0, 1, 0, 0]), np.array([1, 1, 1, 0, 0, 0], bool)
    assert advantage(s, m) == pytest.approx(1 / 3)
    assert tpr_at_fpr(s, m, 0.3) == 0.0 and tpr_at_fpr(s, m, 0.34) == pytest.approx(2 / 3)
    # perfect separation: AUC 1, advantage 1, TPR 1 at any FPR; reversed: AUC 0, advantage 0
    s = np.r_[np.arange(10) + 100.0, np.arange(10)]
    m = np.arange(20) < 10
    r = attack_metrics(s, m, n_boot=50)
    assert (r.auc.estimate, r.advantage.estimate, r.tpr_at_fpr[0.001].estimate) == (1.0, 1.0, 1.0)
    assert roc_auc(-s, m) == 0.0 and advantage(-s, m) == 0.0


def test_delong_ci_covers_the_true_auc():
    # binormal scores: members N(1, 1), non-members N(0, 1): AUC = Φ(1/√2)
    true = stats.norm.cdf(1 / math.sqrt(2))
    g = np.random.default_rng(1)
    m = np.arange(120) < 60
    hits = []
    for _ in range(1000):
        s = g.normal(size=120) + m
        _, lo, hi = delong_ci(s, m)
        hits.append(lo <= true <= hi)
    assert 0.93 <= np.mean(hits) <= 0.97, np.mean(hits)     # 95% ± 2.9 binomial s.e. at 1000 draws


def test_bootstrap_cis_are_seeded_and_bracket_the_estimate():
    g = np.random.default_rng(3)
    m = np.arange(400) < 200
    s = g.normal(size=400) + 0.8 * m
    a, b = attack_metrics(s, m, seed=5, n_boot=300), attack_metrics(s, m, seed=5, n_boot=300)
    assert a.advantage.ci == b.advantage.ci and a.tpr_at_fpr[0.01].ci == b.tpr_at_fpr[0.01].ci
    for e in (a.auc, a.advantage, a.tpr_at_fpr[0.01]):
        assert e.lo <= e.estimate <= e.hi and e.hi > e.lo
    assert a.metrics("loss")["loss_tpr_at_0.1pct"] == a.tpr_at_fpr[0.001].estimate


def test_logit_confidence_is_the_log_odds_of_the_true_class():
    z = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5], [-30.0, 40.0, 0.0]])
    y = torch.tensor([0, 1, 0])
    p = torch.softmax(z.double(), 1)[torch.arange(3), y]
    phi = logit_confidence(z, y)
    np.testing.assert_allclose(phi[:2].numpy(), torch.log(p / (1 - p))[:2].numpy(), rtol=1e-12)
    assert phi[2].item() == pytest.approx(-70.0, abs=1e-9)   # p ≈ e⁻⁷⁰: no underflow to −inf


def test_lira_calibrates_per_example_difficulty():
    # example i: out-confidence φ ~ N(d_i, 1), in-confidence N(d_i + 1.5, 1), difficulties d_i ~ N(0, 3²)
    g = np.random.default_rng(0)
    n, s_n = 2000, 16
    d = 3 * g.normal(size=n)
    member = g.random(n) < 0.5
    target = d + 1.5 * member + g.normal(size=n)
    shadows_out = d + g.normal(size=(s_n, n))
    global_auc = roc_auc(target, member)                     # a global threshold sees the spread of d
    lira = lira_attack(target_phi=target, shadow_phi=shadows_out, is_member=member, n_boot=50)
    # oracle: with known d the optimal score is φ − d, AUC Φ(1.5/√2) ≈ 0.856 (the fit of d from 16 shadows is close)
    oracle = stats.norm.cdf(1.5 / math.sqrt(2))
    assert lira.attack == "lira-offline"
    assert global_auc < 0.7 and abs(lira.auc.estimate - oracle) < 0.03 and lira.auc.estimate > global_auc + 0.15
    # online: half the shadows trained on each example -> the Gaussian log-likelihood ratio, term by term
    inn = g.random((s_n, n)) < 0.5
    inn[0], inn[1] = True, False
    phi = d + 1.5 * inn + g.normal(size=(s_n, n))
    sc = lira_scores(target, phi, inn, global_variance=False)
    i = 7
    a, b = phi[inn[:, i], i], phi[~inn[:, i], i]
    want = stats.norm.logpdf(target[i], a.mean(), a.std(ddof=1)) - stats.norm.logpdf(target[i], b.mean(), b.std(ddof=1))
    assert sc[i] == pytest.approx(want, rel=1e-10)
    assert lira_attack(target_phi=target, shadow_phi=phi, shadow_in=inn, is_member=member, n_boot=50).attack \
        == "lira-online"


def _overfit(x, y, seed=0):
    model = build_model("mlp", d_in=x.shape[1], d_out=2, seed=seed, width=256, depth=2)
    train(model, x, y, optimizer="gd", lr=0.1, momentum=0.9, steps=200)
    return model


def test_loss_attack_on_a_memorizing_mlp_and_on_a_model_that_saw_no_member():
    # noisy two-class Gaussians (heavy class overlap): a wide MLP memorizes 60 points
    ds = gaussian_mixture(n_train=240, n_test=600, dim=20, separation=1.0, seed=0)
    xm, ym = ds.x_train[:60], ds.y_train[:60]
    model = _overfit(xm, ym)
    r = loss_threshold_attack(model, members=(xm, ym), nonmembers=(ds.x_test[:300], ds.y_test[:300]), n_boot=200)
    assert r.auc.estimate > 0.6 and r.auc.lo > 0.5, r.auc
    assert r.advantage.estimate > 0.2
    # a model trained on other examples: members and non-members are both unseen -> chance
    other = _overfit(ds.x_train[60:240], ds.y_train[60:240], seed=1)
    r0 = loss_threshold_attack(other, members=(xm, ym), nonmembers=(ds.x_test[:300], ds.y_test[:300]), n_boot=200)
    assert r0.auc.contains(0.5) and abs(r0.auc.estimate - 0.5) < 0.1, r0.auc
    # the shadow attack: shadows trained like the target on data of their own
    sx, sy = ds.x_train[60:120], ds.y_train[60:120]
    shadows = [_overfit(sx, sy, seed=s) for s in (2, 3)]
    logits = lambda mdl, x: mdl(x).detach().double()
    sh = shadow_attack(shadow_in=(torch.stack([logits(s, sx) for s in shadows]), sy),
                       shadow_out=(torch.stack([logits(s, ds.x_test[300:400]) for s in shadows]), ds.y_test[300:400]),
                       members=(logits(model, xm), ym), nonmembers=(logits(model, ds.x_test[:300]), ds.y_test[:300]),
                       n_boot=100)
    assert sh.auc.estimate > 0.6 and sh.attack == "shadow"


def test_bad_input_is_one_line():
    s, m = np.array([0.1, 0.2, 0.3]), np.array([True, False, True])
    with pytest.raises(InvalidParameterError, match=r"^The 'fpr' parameter of tpr_at_fpr must be a float > 0 and "
                                                    r"< 1\. Got 2\.$"):
        tpr_at_fpr(s, m, 2)
    with pytest.raises(InvalidParameterError, match="'is_member' parameter of roc_auc must be True for some"):
        roc_auc(s, np.ones(3, bool))
    with pytest.raises(InvalidParameterError, match="'scores' parameter of attack_metrics must be finite"):
        attack_metrics(np.array([0.1, np.nan, 0.3]), m)
    with pytest.raises(InvalidParameterError, match="'shadow_phi' parameter of lira_scores"):
        lira_scores(s, np.zeros((4, 2)))
