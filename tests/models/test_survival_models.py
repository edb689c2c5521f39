"""Deep survival models and baselines on real data (WHAS500, BMT from scikit-survival)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from sklearn.model_selection import train_test_split
from sksurv.datasets import load_bmt, load_whas500
from sksurv.metrics import concordance_index_censored

from iatros import api
from iatros.errors import ConfigError
from iatros.kinds import TargetKind
from iatros.models.registry import get_model_spec
from iatros.models.survival import (
    BreslowBaseline,
    DeepHitNet,
    DeepSurvNet,
    LogisticHazardNet,
    baseline_survival_curves,
    concordance_monitor,
    cumulative_incidence,
    discretize,
    fit_survival_baseline,
    fit_survival_head,
    survival_curves,
    survival_dataset,
)
from iatros.train.survival_losses import (
    cox_ph_loss,
    deephit_loss,
    logistic_hazard_loss,
    survival_loss_for,
)
from iatros.train.trainer import TrainConfig, Trainer


@pytest.fixture(scope="module")
def whas():
    """WHAS500 as floats, split 300 train / 75 validation / 125 test, stratified on the event."""
    x, y = load_whas500()
    x = x.apply(lambda c: c.astype(float)).to_numpy()
    time, event = y["lenfol"].astype(float), y["fstat"].astype(float)
    idx = np.arange(len(x))
    rest, test = train_test_split(idx, test_size=125, stratify=event, random_state=0)
    train, val = train_test_split(rest, test_size=75, stratify=event[rest], random_state=0)
    return {"x": x, "time": time, "event": event, "train": train, "val": val, "test": test}


def _part(d, name):
    i = d[name]
    return d["x"][i], d["time"][i], d["event"][i]


def _train(model, d, epochs, lr=3e-3):
    """Preprocessing and head fitted on the training rows, then the project's Trainer."""
    x, t, e = _part(d, "train")
    model.fit_preprocessing(x)
    fit_survival_head(model, t, e)
    sets = [survival_dataset(*_part(d, p)[:1], np.column_stack(_part(d, p)[1:]), TargetKind.SURVIVAL)
            for p in ("train", "val")]
    cfg = TrainConfig(epochs=epochs, batch_size=64, lr=lr, patience=0, progress=False, seed=0)
    Trainer(cfg).fit(model, survival_loss_for(model), *sets, monitor=concordance_monitor(model))
    return fit_survival_baseline(model, x, t, e)


@pytest.fixture(scope="module")
def trained(whas):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    return {"deepsurv": _train(DeepSurvNet(14), whas, 40),
            "logistic-hazard": _train(LogisticHazardNet(14, n_intervals=10), whas, 15),
            "deephit": _train(DeepHitNet(14, n_intervals=10), whas, 15)}


def _slow_cox_nll(eta, time, event, ties):
    """Textbook negative partial log-likelihood, one event time at a time."""
    ll, n_events = 0.0, 0
    for tau in np.unique(time[event == 1]):
        dead, at_risk = (time == tau) & (event == 1), time >= tau
        d, r, s = dead.sum(), np.exp(eta[at_risk]).sum(), np.exp(eta[dead]).sum()
        ll += eta[dead].sum() - sum(np.log(r - (k / d if ties == "efron" else 0.0) * s) for k in range(d))
        n_events += d
    return -ll / n_events


def _assert_curves(risk, times, surv, n):
    assert risk.shape == (n,) and np.all(np.isfinite(risk))
    assert times.ndim == 1 and surv.shape == (n, len(times)) and np.all(np.diff(times) > 0)
    assert np.all((surv >= 0) & (surv <= 1)) and np.all(np.diff(surv, axis=1) <= 1e-12)


@pytest.mark.parametrize("ties", ["breslow", "efron"])
def test_cox_loss_matches_slow_reference_with_tied_times(whas, ties):
    rng = np.random.default_rng(0)
    time = np.ceil(whas["time"][:200] / 90.0)           # quarters: heavy ties among events
    event = whas["event"][:200]
    eta = rng.normal(size=200)
    assert len(np.unique(time[event == 1])) < (event == 1).sum()
    got = cox_ph_loss(torch.tensor(eta), torch.tensor(time), torch.tensor(event), ties=ties)
    assert got.item() == pytest.approx(_slow_cox_nll(eta, time, event, ties), rel=1e-10)
    # shuffled rows give the same loss (sorting happens inside)
    p = rng.permutation(200)
    again = cox_ph_loss(torch.tensor(eta[p]), torch.tensor(time[p]), torch.tensor(event[p]), ties=ties)
    assert again.item() == pytest.approx(got.item(), rel=1e-10)


def test_cox_loss_matches_lifelines_partial_likelihood(whas):
    lifelines = pytest.importorskip("lifelines")
    import pandas as pd

    cols = [1, 3, 4, 8]                                # age, bmi, chf, hr
    x = whas["x"][:, cols]
    df = pd.DataFrame(x, columns=[f"x{i}" for i in cols]).assign(T=whas["time"], E=whas["event"])
    cph = lifelines.CoxPHFitter().fit(df, "T", "E")
    eta = x @ cph.params_.to_numpy()
    loss = cox_ph_loss(torch.tensor(eta), torch.tensor(whas["time"]), torch.tensor(whas["event"]))
    assert -loss.item() * whas["event"].sum() == pytest.approx(cph.log_likelihood_, rel=1e-6)


def test_batch_without_events_gives_zero_loss_and_finite_gradients(whas):
    x, t, _ = _part(whas, "train")
    target = torch.tensor(np.column_stack([t[:32], np.zeros(32)]), dtype=torch.float32)
    for model in (DeepSurvNet(14), LogisticHazardNet(14, n_intervals=8), DeepHitNet(14, n_intervals=8)):
        fit_survival_head(model, *_part(whas, "train")[1:])
        out = model(torch.tensor(x[:32], dtype=torch.float32))
        loss = survival_loss_for(model)(out, target)
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
        if isinstance(model, DeepSurvNet):
            assert loss.item() == 0.0


def test_deepsurv_reaches_useful_concordance_on_held_out_whas500(whas, trained):
    risk, _, _ = survival_curves(trained["deepsurv"], whas["x"][whas["test"]])
    _, t, e = _part(whas, "test")
    c = concordance_index_censored(e > 0, t, risk)[0]
    assert c > 0.65, c


@pytest.mark.parametrize("name", ["deepsurv", "logistic-hazard", "deephit"])
def test_deep_model_curves_are_valid_and_checkpoints_self_contained(whas, trained, name):
    model = trained[name]
    x_test = whas["x"][whas["test"]]
    risk, times, surv = survival_curves(model, x_test)
    _assert_curves(risk, times, surv, len(x_test))
    _, t, e = _part(whas, "test")
    assert concordance_index_censored(e > 0, t, risk)[0] > 0.6
    spec = get_model_spec(name)
    params = {"hidden": [32, 32], "dropout": 0.1}       # as model.json stores them (lists)
    if name != "deepsurv":
        params["n_intervals"] = 10
    fresh = spec.build(14, 0, **params)
    fresh.load_state_dict(model.state_dict())
    again = survival_curves(fresh, x_test)
    for a, b in zip(again, (risk, times, surv), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["logistic-hazard", "deephit"])
def test_discrete_losses_decrease_on_real_data(whas, name):
    torch.manual_seed(0)
    x, t, e = _part(whas, "train")
    model = get_model_spec(name).build(14, 0, n_intervals=10, dropout=0.0)
    model.fit_preprocessing(x)
    fit_survival_head(model, t, e)
    loss_fn = survival_loss_for(model)
    xb = torch.tensor(x, dtype=torch.float32)
    target = torch.tensor(np.column_stack([t, e]), dtype=torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = loss_fn(model(xb), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses
    # the functional forms agree with the Trainer-facing module
    cuts = model.cuts
    out = model(xb)
    functional = (logistic_hazard_loss(out, target[:, 0], target[:, 1], cuts) if name == "logistic-hazard"
                  else deephit_loss(out, target[:, 0], target[:, 1], cuts))
    assert functional.item() == pytest.approx(loss_fn(out, target).item(), rel=1e-6)


def _slow_logistic_hazard(logits, idx, code):
    """Per row: -log h at the event interval and -log(1 - h) for every interval survived."""
    h = 1 / (1 + np.exp(-logits))
    total = 0.0
    for i in range(len(h)):
        if idx[i] >= 0:
            total -= np.log(1 - h[i, :idx[i]]).sum()
            total -= np.log(h[i, idx[i]] if code[i] > 0 else 1 - h[i, idx[i]])
    return total / len(h)


def _slow_deephit(logits, idx, code, n_risks, alpha, sigma):
    """pycox's nll_pmf_cr + rank_loss_deephit_cr (pair_rank_mat) written out with loops."""
    n, m = len(logits), logits.shape[1] // n_risks
    z = np.concatenate([logits, np.zeros((n, 1))], axis=1)
    pmf = np.exp(z - z.max(axis=1, keepdims=True))
    pmf = (pmf / pmf.sum(axis=1, keepdims=True))[:, :-1].reshape(n, n_risks, m)
    cdf = np.concatenate([np.zeros((n, n_risks, 1)), pmf.cumsum(axis=2)], axis=2)   # F at idx + 1
    nll = -sum(np.log(pmf[i, code[i] - 1, idx[i]]) if code[i] > 0 else np.log(1 - cdf[i, :, idx[i] + 1].sum())
               for i in range(n)) / n
    rank = 0.0
    for i in np.flatnonzero(code > 0):
        k, at = code[i] - 1, idx[i] + 1
        later = (idx[i] < idx) | ((idx[i] == idx) & (code == 0))
        rank += np.exp(-(cdf[i, k, at] - cdf[later, k, at]) / sigma).sum()
    return alpha * nll + (1 - alpha) * rank / n**2


@pytest.mark.parametrize("data", ["whas500", "bmt-competing"])
def test_discrete_losses_match_slow_references(whas, data):
    if data == "whas500":   # censoring starts at day 368: the first cut leaves rows with no information
        time, event, n_risks = whas["time"], whas["event"], 1
        cuts = torch.tensor([400.0, 800.0, 1200.0, 1600.0], dtype=torch.float64)
    else:
        _, y = load_bmt()
        time, event, n_risks = np.maximum(y["ftime"], 0.5), y["status"].astype(float), 2
        cuts = torch.tensor(np.quantile(time[event > 0], [0.2, 0.4, 0.6, 0.8]), dtype=torch.float64)
    idx, code = (a.numpy() for a in discretize(torch.tensor(time), torch.tensor(event), cuts))
    assert (idx == -1).any()                            # censored before the first cut is covered
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(len(time), 4 * n_risks))
    t, e = torch.tensor(time), torch.tensor(event)
    if n_risks == 1:
        got = logistic_hazard_loss(torch.tensor(logits), t, e, cuts).item()
        assert got == pytest.approx(_slow_logistic_hazard(logits, idx, code), rel=1e-10)
    got = deephit_loss(torch.tensor(logits), t, e, cuts, alpha=0.3, sigma=0.2, n_risks=n_risks).item()
    assert got == pytest.approx(_slow_deephit(logits, idx, code, n_risks, 0.3, 0.2), rel=1e-10)


def test_label_transform_follows_pycox_conventions():
    cuts = torch.tensor([1.0, 2.0, 4.0])
    time = torch.tensor([0.5, 0.5, 1.0, 1.5, 1.5, 3.0, 4.0, 9.0, 9.0])
    event = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 2.0, 0.0, 0.0, 1.0])
    idx, code = discretize(time, event, cuts)
    assert idx.tolist() == [0, -1, 0, 1, 0, 2, 2, 2, 2]
    assert code.tolist() == [1, 0, 0, 1, 0, 2, 0, 0, 0]   # an event past the last cut: survived all


def test_competing_risks_deephit_cifs_and_survival_sum_to_one():
    x, y = load_bmt()
    x = x.apply(lambda c: c.astype(float)).to_numpy()
    time, event = np.maximum(y["ftime"], 0.5), y["status"].astype(float)   # iatros needs time > 0
    assert set(np.unique(event)) == {0.0, 1.0, 2.0}
    torch.manual_seed(0)
    model = get_model_spec("deephit").build(1, 0, n_intervals=5, n_risks=2, hidden=[8], dropout=0.0)
    model.fit_preprocessing(x)
    fit_survival_head(model, time, event)
    loss_fn = survival_loss_for(model)
    xb, target = torch.tensor(x, dtype=torch.float32), torch.tensor(np.column_stack([time, event]),
                                                                     dtype=torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = loss_fn(model(xb), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    risk, times, surv = survival_curves(model, x)
    _assert_curves(risk, times, surv, len(x))
    cif_times, cif = cumulative_incidence(model, x)
    assert cif.shape == (len(x), 2, len(times)) and np.array_equal(cif_times, times)
    assert np.all(np.diff(cif, axis=2) >= -1e-12)
    np.testing.assert_allclose(surv + cif.sum(axis=1), 1.0, atol=1e-6)
    with pytest.raises(ConfigError, match="event codes"):
        fit_survival_head(get_model_spec("deephit").build(1, 0, n_intervals=5), time, event)


@pytest.fixture(scope="module")
def coxph(whas):
    x, t, e = _part(whas, "train")
    return get_model_spec("coxph").build(TargetKind.SURVIVAL, 0, alpha=0.01).fit(x, np.column_stack([t, e]))


def test_breslow_baseline_reproduces_sksurv_coxph_curves(whas, coxph):
    x, t, e = _part(whas, "train")
    base = BreslowBaseline().fit(coxph.predict(x), t, e)
    x_test = whas["x"][whas["test"]]
    times, surv = base.survival(coxph.predict(x_test))
    _, _, reference = baseline_survival_curves(coxph, x_test, times)
    assert np.abs(surv - reference).max() < 0.02
    assert np.array_equal(times, np.unique(t[e == 1]))


@pytest.mark.parametrize("name", ["coxph", "rsf"])
def test_baselines_give_valid_curves(whas, coxph, name):
    x, t, e = _part(whas, "train")
    est = coxph if name == "coxph" else get_model_spec("rsf").build(
        TargetKind.SURVIVAL, 0, n_estimators=25, min_samples_leaf=15).fit(x, np.column_stack([t, e]))
    x_test, t_test, e_test = _part(whas, "test")
    grid = np.linspace(0.5, t.max() * 1.1, 40)           # also before and past the training times
    risk, times, surv = baseline_survival_curves(est, x_test, grid)
    _assert_curves(risk, times, surv, len(x_test))
    assert concordance_index_censored(e_test > 0, t_test, risk)[0] > 0.65
    assert np.all(surv[:, 0] == 1.0)                     # before the first training time
    restored = pickle.loads(pickle.dumps(est))           # run folders keep it with joblib
    np.testing.assert_array_equal(baseline_survival_curves(restored, x_test, grid)[2], surv)


def test_specs_registered_and_misuse_is_a_clear_error(whas):
    for name, family in [("deepsurv", "torch"), ("logistic-hazard", "torch"), ("deephit", "torch"),
                         ("coxph", "sklearn"), ("rsf", "sklearn")]:
        assert get_model_spec(name).family == family
    with pytest.raises(ConfigError, match="fit_survival_head"):
        survival_loss_for(LogisticHazardNet(14))
    with pytest.raises(ConfigError, match="fit_survival_baseline"):
        survival_curves(DeepSurvNet(14), whas["x"][:3])
    with pytest.raises(ConfigError, match="'rsf' does not predict binary targets"):
        api.train("breast-cancer-wdbc", model="rsf", register=False)


@pytest.mark.parametrize("cls", [DeepSurvNet, LogisticHazardNet, DeepHitNet])
def test_networks_take_the_published_deepsurv_body(cls):
    net = cls(6, hidden=(26, 26, 26), dropout=0.0, activation="selu", batch_norm=False, out_l2=0.5)
    layers = [type(m) for m in net.net]
    assert layers.count(torch.nn.SELU) == 3 and torch.nn.BatchNorm1d not in layers
    assert torch.isclose(net.penalty(), 0.5 * net.net[-1].weight.pow(2).sum())
    assert cls(6).penalty() is None
    with pytest.raises(ConfigError, match="activation"):
        cls(6, activation="swish")
    with pytest.raises(ConfigError, match="out_l2"):
        cls(6, out_l2=-1.0)


@pytest.mark.parametrize("name", ["logistic-hazard", "deephit"])
def test_discrete_curves_are_interpolated_between_cuts_and_break_within_interval_ties(whas, trained,
                                                                                    name):
    from iatros.evaluate.survival import SurvivalPrediction, evaluate_survival

    model = trained[name]
    x_test, t, e = _part(whas, "test")
    _, t_train, e_train = _part(whas, "train")
    model.interpolate = 1
    try:
        _, cut_times, at_cuts = survival_curves(model, x_test)
    finally:
        model.interpolate = 10
    risk, times, surv = survival_curves(model, x_test)
    _assert_curves(risk, times, surv, len(x_test))
    np.testing.assert_allclose(cut_times, model.cuts.numpy(), rtol=1e-6)
    np.testing.assert_allclose(times[9::10], cut_times, rtol=1e-9)
    np.testing.assert_allclose(surv[:, 9::10], at_cuts, atol=1e-9)
    halfway = surv[:, 14]                      # midway through the second interval
    expected = (np.sqrt(at_cuts[:, 0] * at_cuts[:, 1]) if name == "logistic-hazard"   # constant hazard
                else (at_cuts[:, 0] + at_cuts[:, 1]) / 2)                              # constant density
    np.testing.assert_allclose(halfway, expected, rtol=1e-9)

    def c_td(grid, curves):
        pred = SurvivalPrediction(risk, grid, curves)
        result = evaluate_survival(t, e, pred, train_time=t_train, train_event=e_train, n_boot=0)
        return result["c_td"]["value"]

    assert c_td(times, surv) > c_td(cut_times, at_cuts)
