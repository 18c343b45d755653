"""Per-purpose seed streams: deterministic, distinct, and uncorrelated with each other."""
import numpy as np

from petridish.seeding import rng, sub_seed


def test_sub_seeds_are_stable_and_differ_by_purpose_and_seed():
    assert sub_seed(0, "init") == sub_seed(0, "init")
    assert len({sub_seed(s, p) for s in range(50) for p in ("data", "label_noise", "init", "batches")}) == 200
    assert 0 <= sub_seed(123, "data") < 2 ** 31


def test_label_noise_and_init_streams_are_independent():
    """The defect this fixes: one seed drove both, so the corruption mask equalled a weight threshold."""
    mask = np.concatenate([rng(s, "label_noise").random(1000) < 0.2 for s in range(20)])
    w = np.concatenate([rng(s, "init").uniform(-1, 1, 1000) < -0.6 for s in range(20)])
    r = np.corrcoef(mask, w)[0, 1]
    assert abs(r) < 4 / np.sqrt(mask.size)          # 4 sd of a null correlation over 20,000 pairs
