import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from iatros.errors import ConfigError, RunError
from iatros.kinds import TargetKind
from iatros.train.trainer import Callback, TrainConfig, Trainer


def _data(n=256, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] + 0.3 * rng.normal(size=n) > 0).astype(np.float32)
    return TensorDataset(torch.from_numpy(x), torch.from_numpy(y))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 1))

    def forward(self, x):
        return self.lin(x).squeeze(-1)


def _accuracy(outputs, targets):
    return float(((outputs.reshape(-1) > 0) == (targets > 0.5)).mean())


def _fit(tmp_path, epochs=8, callbacks=(), resume=False, model=None, **kw):
    torch.manual_seed(0)
    model = model or Net()
    config = TrainConfig(epochs=epochs, batch_size=32, lr=1e-2, progress=False, patience=0, **kw)
    trainer = Trainer(config, checkpoint_dir=tmp_path / "ckpt", callbacks=callbacks)
    result = trainer.fit(model, nn.BCEWithLogitsLoss(), _data(), _data(128, seed=1),
                         monitor=_accuracy, resume=resume)
    return model, result


def test_training_learns_a_separable_signal(tmp_path):
    _, result = _fit(tmp_path)
    assert result.best_score > 0.85
    assert (tmp_path / "ckpt" / "best.pt").exists() and (tmp_path / "ckpt" / "last.pt").exists()


def test_best_epoch_weights_are_loaded_after_training(tmp_path):
    model, result = _fit(tmp_path)
    best = torch.load(tmp_path / "ckpt" / "best.pt")
    for key, value in model.state_dict().items():
        assert torch.equal(value, best["model"][key])
    assert best["epoch"] == result.best_epoch


def test_early_stopping_stops_after_patience(tmp_path):
    torch.manual_seed(0)
    config = TrainConfig(epochs=50, batch_size=32, lr=1e-2, progress=False, patience=3)
    constant = Trainer(config, checkpoint_dir=tmp_path / "c")
    result = constant.fit(Net(), nn.BCEWithLogitsLoss(), _data(), _data(64, 1),
                          monitor=lambda o, t: 0.5)
    assert result.stopped_early and result.epochs_run == 4 and result.best_epoch == 1


def test_keep_last_trains_every_epoch_and_keeps_the_final_weights(tmp_path):
    torch.manual_seed(0)
    config = TrainConfig(epochs=6, batch_size=32, lr=1e-2, progress=False, patience=2, keep="last")
    model = Net()
    scores = iter([0.9, 0.1, 0.1, 0.1, 0.1, 0.1])  # early stopping would keep epoch 1 and stop at 3
    result = Trainer(config, checkpoint_dir=tmp_path / "c").fit(
        model, nn.BCEWithLogitsLoss(), _data(), _data(64, 1), monitor=lambda o, t: next(scores))
    last = torch.load(tmp_path / "c" / "last.pt", weights_only=False)
    assert result.epochs_run == 6 and result.best_epoch == 6 and not result.stopped_early
    for key, value in model.state_dict().items():
        assert torch.equal(value, last["model"][key])


def test_plain_sgd_without_momentum_takes_lr_times_gradient_steps(tmp_path):
    torch.manual_seed(0)
    model = Net()
    before = [p.detach().clone() for p in model.parameters()]
    data = _data(32)
    config = TrainConfig(epochs=1, batch_size=32, lr=0.1, optimizer="sgd", momentum=0.0,
                         weight_decay=0.0, grad_clip=None, scheduler="none", progress=False)
    x, y = data.tensors
    nn.BCEWithLogitsLoss()(model(x), y).backward()
    expected = [b - 0.1 * p.grad for b, p in zip(before, model.parameters(), strict=True)]
    model.zero_grad()
    Trainer(config, checkpoint_dir=None).fit(model, nn.BCEWithLogitsLoss(), data, _data(16, 1))
    for got, want in zip(model.parameters(), expected, strict=True):
        assert torch.allclose(got, want, atol=1e-6)


class Penalised(Net):
    def penalty(self):
        return 10.0 * self.lin[-1].weight.pow(2).sum()


def test_a_models_penalty_joins_the_loss(tmp_path):
    torch.manual_seed(0)
    config = TrainConfig(epochs=20, batch_size=32, lr=1e-2, progress=False, patience=0)
    plain, penalised = Net(), Penalised()
    penalised.load_state_dict(plain.state_dict())
    for model in (plain, penalised):
        Trainer(config, checkpoint_dir=None).fit(model, nn.BCEWithLogitsLoss(), _data(), _data(64, 1),
                                                 monitor=_accuracy)
    assert penalised.lin[-1].weight.norm() < 0.5 * plain.lin[-1].weight.norm()


class Crash(Callback):
    def __init__(self, after):
        self.after = after

    def on_epoch_end(self, trainer, record):
        if record.epoch == self.after:
            raise KeyboardInterrupt


def test_resume_after_crash_matches_uninterrupted_run(tmp_path):
    full_model, full = _fit(tmp_path / "full")
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / "crashed", callbacks=[Crash(after=3)])
    resumed_model, resumed = _fit(tmp_path / "crashed", resume=True)
    assert resumed.resumed_from == 3
    assert [r.epoch for r in resumed.history] == list(range(1, 9))
    assert [round(r.train_loss, 6) for r in resumed.history] == \
        [round(r.train_loss, 6) for r in full.history]
    for key, value in full_model.state_dict().items():
        assert torch.allclose(value, resumed_model.state_dict()[key])


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(RunError, match="nothing to resume"):
        _fit(tmp_path / "empty", resume=True)


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "last.pt").write_bytes(b"\x80\x02 truncated")
    with pytest.raises(RunError, match="cannot read checkpoint"):
        _fit(tmp_path, resume=True)


def test_divergence_is_reported(tmp_path):
    class Exploding(Net):
        def forward(self, x):
            return super().forward(x) * float("inf")

    with pytest.raises(RunError, match="diverged"):
        _fit(tmp_path, model=Exploding())


def test_predict_returns_outputs_in_order(tmp_path):
    model, _ = _fit(tmp_path, epochs=2)
    data = _data(50, seed=3)
    trainer = Trainer(TrainConfig(progress=False, batch_size=7))
    out = trainer.predict(model, data)
    model.eval()
    with torch.no_grad():
        direct = model(data.tensors[0]).numpy()
    assert np.allclose(out, direct, atol=1e-5)


def test_bf16_autocast_on_cpu_trains(tmp_path, monkeypatch):
    monkeypatch.setattr("iatros.train.trainer.cpu_has_native_bf16", lambda: True)
    assert Trainer(TrainConfig(amp=True, progress=False)).amp_dtype is torch.bfloat16
    _, result = _fit(tmp_path, epochs=3, amp=True)
    assert np.isfinite(result.history[-1].train_loss)


def test_mixed_precision_stays_off_on_a_cpu_that_only_emulates_bf16(monkeypatch):
    monkeypatch.setattr("iatros.train.trainer.cpu_has_native_bf16", lambda: False)
    assert Trainer(TrainConfig(amp=True, progress=False)).amp_dtype is None


def test_invalid_config_is_rejected():
    with pytest.raises(ConfigError):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError):
        TrainConfig(optimizer="lbfgs")
    with pytest.raises(ConfigError, match="keep"):
        TrainConfig(keep="median")
    with pytest.raises(ConfigError, match="momentum"):
        TrainConfig(momentum=1.0)


def test_ema_weights_are_validated_kept_and_resumed_exactly(tmp_path):
    full_model, full = _fit(tmp_path / "full", ema_decay=0.9)
    plain_model, _ = _fit(tmp_path / "plain")
    assert any(not torch.equal(full_model.state_dict()[k], plain_model.state_dict()[k])
               for k in full_model.state_dict())
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / "crashed", callbacks=[Crash(after=3)], ema_decay=0.9)
    resumed_model, resumed = _fit(tmp_path / "crashed", resume=True, ema_decay=0.9)
    assert [round(r.val_metric, 6) for r in resumed.history] == \
        [round(r.val_metric, 6) for r in full.history]
    for key, value in full_model.state_dict().items():
        assert torch.allclose(value.float(), resumed_model.state_dict()[key].float())


def test_resuming_an_early_stopped_run_trains_no_further(tmp_path):
    config = TrainConfig(epochs=50, batch_size=32, lr=1e-2, progress=False, patience=3)

    def run(resume):
        torch.manual_seed(0)
        return Trainer(config, checkpoint_dir=tmp_path / "c").fit(
            Net(), nn.BCEWithLogitsLoss(), _data(), _data(64, 1), monitor=lambda o, t: 0.5,
            resume=resume)

    first, again = run(False), run(True)
    assert first.epochs_run == again.epochs_run == 4 and again.stopped_early
    assert len(again.history) == 4


def test_balanced_multiclass_loss_weighs_rare_classes_up_and_absent_ones_at_one():
    from iatros.train.losses import ClassWeightedLoss, loss_for

    loss = loss_for(TargetKind.MULTICLASS, np.array([0] * 100 + [1] * 4), balance=True)
    assert isinstance(loss, ClassWeightedLoss)
    assert loss.weights.tolist() == pytest.approx([1.0, 5.0])
    logits = torch.zeros(2, 3)  # a third class the training rows never held
    assert torch.isfinite(loss(logits, torch.tensor([0, 2])))
    plain = loss_for(TargetKind.MULTICLASS, np.array([0, 1]), balance=False)
    assert not isinstance(plain, ClassWeightedLoss)


def test_warmup_schedule_rises_to_lr_then_decays_to_a_tenth(tmp_path):
    _, result = _fit(tmp_path, epochs=12, scheduler="warmup", warmup_epochs=2)
    rates = [r.lr for r in result.history]  # the rate after each epoch's step
    assert rates[0] == pytest.approx(1e-2 * 0.55) and rates[1] == pytest.approx(1e-2)
    assert all(a > b for a, b in zip(rates[1:], rates[2:], strict=False))
    assert rates[-1] == pytest.approx(1e-3)


def test_warmup_schedule_resumes_at_the_same_rate(tmp_path):
    _, full = _fit(tmp_path / "full", scheduler="warmup")
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / "crashed", callbacks=[Crash(after=3)], scheduler="warmup")
    _, resumed = _fit(tmp_path / "crashed", resume=True, scheduler="warmup")
    assert [r.lr for r in resumed.history] == pytest.approx([r.lr for r in full.history])
