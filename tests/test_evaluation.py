import numpy as np
import pytest

from forecast.evaluation import baseline_forecasts, compute_metrics, evaluate, mase_scale, verdict


def test_metrics_against_hand_values():
    actual = np.array([[[2.0]], [[4.0]], [[0.0]]])  # (N=3, H=1, K=1)
    predicted = np.array([[[3.0]], [[2.0]], [[1.0]]])
    m = compute_metrics(actual, predicted, scale=np.array([2.0]))
    assert m["mae"] == pytest.approx((1 + 2 + 1) / 3)
    assert m["rmse"] == pytest.approx(np.sqrt((1 + 4 + 1) / 3))
    # the zero actual is skipped: (50% + 50%) / 2
    assert m["mape"] == pytest.approx(50.0)
    # 200*1/5, 200*2/6, 200*1/1
    assert m["smape"] == pytest.approx((40 + 200 / 3 + 200) / 3)
    assert m["mase"] == pytest.approx((4 / 3) / 2)


def test_baselines_on_hand_built_series():
    values = np.arange(10.0).reshape(-1, 1) ** 2  # 0 1 4 9 16 25 36 49 64 81
    origins = np.array([5, 6])
    base = baseline_forecasts(values, origins, horizon=3, season=2, train_end=6)
    assert base["naive"][:, :, 0].tolist() == [[25, 25, 25], [36, 36, 36]]
    # seasonal naive, m=2: step s takes y[o - 2 + 1 + (s-1) % 2]
    assert base["seasonal_naive"][:, :, 0].tolist() == [[16, 25, 16], [25, 36, 25]]
    assert base["mean"][0, 0, 0] == pytest.approx(np.mean([0, 1, 4, 9, 16, 25]))


def test_mase_scale_is_mean_lag_m_difference():
    history = np.array([[1.0], [3.0], [2.0], [6.0]])
    assert mase_scale(history, 1)[0] == pytest.approx((2 + 1 + 4) / 3)
    assert mase_scale(history, 2)[0] == pytest.approx((1 + 3) / 2)


def test_evaluate_per_target_and_step():
    values = np.stack([np.arange(20.0), 2 * np.arange(20.0)], axis=1)  # (20, 2)
    origins = np.arange(14, 18)
    perfect = values[origins[:, None] + np.arange(1, 3)]  # (4, 2, 2)
    report = evaluate(values, origins, perfect, ["a", "b"], season=1, train_end=15)
    assert report["model"]["mae"] == 0.0
    # naive on a line with slope 1 (a) and 2 (b): errors 1, 2 per step for a; 2, 4 for b
    assert report["per_target"]["a"]["naive"]["mae"] == pytest.approx(1.5)
    assert report["per_target"]["b"]["naive"]["mae"] == pytest.approx(3.0)
    assert [s["naive"]["mae"] for s in report["per_step"]] == pytest.approx([1.5, 3.0])
    assert report["per_target"]["a"]["naive"]["mase"] == pytest.approx(1.5)


def test_verdict_wording():
    report = {
        "model": {"mase": 0.8, "mae": 1},
        "baselines": {"naive": {"mase": 1.0, "mae": 1}, "mean": {"mase": 3.0, "mae": 1}},
    }
    assert (
        verdict(report, "GRU")
        == "GRU beats naive (the best baseline) by 20% MASE on the test split (0.8 vs 1)"
    )
    report["model"]["mase"] = 1.07
    assert verdict(report, "GRU") == "GRU does not beat naive (MASE 1.07 vs 1 on the test split)"
