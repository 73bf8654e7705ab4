import numpy as np
import pytest

from forecast.forecasting.evaluation import (
    baseline_forecasts,
    compute_metrics,
    evaluate,
    mase_scale,
    verdict,
)


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
    base, unavailable = baseline_forecasts(values, origins, horizon=3, season=2, test_start=6)
    assert unavailable == {}
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
    report = evaluate(values, origins, perfect, ["a", "b"], season=1, test_start=15)
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


def test_seasonal_naive_is_unavailable_without_a_full_season_before_the_origin():
    values = np.arange(30.0).reshape(-1, 1)
    origins = np.array([2, 10])  # row 2 has 3 rows behind it; a season of 4 needs 4
    perfect = values[origins[:, None] + np.arange(1, 3)[None, :]]
    report = evaluate(values, origins, perfect, ["y"], season=4, test_start=3)
    seasonal = report["baselines"]["seasonal_naive"]
    assert {m: seasonal[m] for m in ("mae", "rmse", "mape", "smape", "mase")} == dict.fromkeys(
        ("mae", "rmse", "mape", "smape", "mase")
    )
    assert seasonal["unavailable"] == "origin row 2 has fewer than one season (4 rows) before it"
    assert report["per_target"]["y"]["seasonal_naive"]["mae"] is None
    assert report["per_step"][0]["seasonal_naive"]["unavailable"]
    # the other baselines are still scored, and the verdict never names the missing one
    assert report["baselines"]["naive"]["mae"] == pytest.approx(1.5)
    line = verdict(report, "LSTM")
    assert "seasonal" not in line and "naive" in line


def test_seasonal_naive_from_exactly_one_season_is_available():
    values = np.arange(30.0).reshape(-1, 1)
    base, unavailable = baseline_forecasts(values, np.array([3]), horizon=2, season=4, test_start=4)
    assert unavailable == {}
    assert base["seasonal_naive"][0, :, 0].tolist() == [0, 1]  # y[o-m+1], y[o-m+2]


def test_a_verdict_within_half_a_percent_is_level():
    def report(model: float, naive: float) -> dict:
        return {"model": {"mase": model}, "baselines": {"naive": {"mase": naive}}}

    assert verdict(report(0.998, 1.0), "gru") == (
        "gru is level with naive (the best baseline): MASE 0.998 vs 1 on the test split"
    )
    assert verdict(report(0.90, 1.0), "gru").startswith(
        "gru beats naive (the best baseline) by 10%"
    )
    assert verdict(report(1.004, 1.0), "gru").startswith("gru is level with naive")
    assert verdict(report(1.1, 1.0), "gru").startswith("gru does not beat naive")
    assert verdict(report(0.0, 0.0), "gru").startswith("gru is level with naive")
    assert verdict(report(0.7, 0.0), "gru").startswith("gru does not beat naive")
