"""infinite-width on a reduced quick config: the signatures of the NTK limit."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from petridish.experiments.infinite_width import EXPERIMENT, LABELS, METRICS
from petridish.lab.experiment import Cell


def test_wide_networks_approach_their_ntk():
    cfg = EXPERIMENT.config({"width": [16, 128, 1024]}, quick=True)
    cells = [Cell(f"k{i}", EXPERIMENT.name, p, s, "done", EXPERIMENT.run(p, s))
             for i, (p, s) in enumerate(EXPERIMENT.grid(cfg, seeds=range(2)))]
    analysis = EXPERIMENT.analyze(cells)
    v = analysis.values
    assert sum("log-log slope" in f for f in analysis.findings) == 4     # one fitted slope per panel
    # (a) empirical NTK at init -> analytic NTK like width^-1/2
    assert -0.8 < v["ntk_dist_slope"] < -0.3, v["ntk_dist_slope"]
    assert v["ntk_dist_by_width"][1024] < v["ntk_dist_by_width"][16] / 4
    # (b) the NTK moves less during training
    assert v["ntk_change_slope"] < -0.3 and v["ntk_change_by_width"][1024] < 0.05
    # (c) the ensemble mean and variance approach ntk_predict at the same time
    assert v["mean_gap_slope"] < -0.2 and v["mean_gap_by_width"][1024] < v["mean_gap_by_width"][16] / 3
    assert v["var_gap_by_width"][1024] < v["var_gap_by_width"][16] / 3
    for c in cells:                                       # training worked like the linear model
        assert c.metrics["train_loss"] < 0.05
    fig = plt.figure(figsize=(12, 3))
    EXPERIMENT.plot(cells, fig)
    assert [ax.get_title() for ax in fig.axes] == [LABELS[m] for m in METRICS]
    widths = np.array([16.0, 128.0, 1024.0])
    for ax, m in zip(fig.axes, METRICS):            # per panel: seed means, their log-log fit, width^-1/2
        means = np.array([np.mean([c.metrics[m] for c in cells if c.params["width"] == w]) for w in widths])
        data = ax.containers[0].lines[0]           # the error bars' data line
        fit = next(line for line in ax.lines if line.get_label().startswith("fit slope"))
        ref = next(line for line in ax.lines if line.get_label() == "width^-1/2")
        np.testing.assert_allclose(data.get_xdata(), widths)
        np.testing.assert_allclose(data.get_ydata(), means)
        slope = np.polyfit(np.log(widths), np.log(means), 1)[0]
        np.testing.assert_allclose(np.diff(np.log(fit.get_ydata())) / np.diff(np.log(widths)), slope)
        assert fit.get_label() == f"fit slope {slope:.2f}"
        np.testing.assert_allclose(ref.get_ydata(), means[0] * (widths / 16) ** -0.5)
    plt.close(fig)
