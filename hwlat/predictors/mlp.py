"""Small torch MLP ensemble on standardized features and standardized log-latency.

Each member gets its own seed and its own validation split (early stopping on it); the
ensemble mean is the prediction and the members' spread gives the interval. With ``bins``, the
members take turns over piecewise-linear encodings of the features with those bin counts
(:mod:`hwlat.predictors.encoding`), which both sharpens them and makes them disagree where the
data is thin. With ``huber_delta``, the loss is Huber with that threshold in log-latency: one
noisy measurement then pulls a fit less than a squared error lets it, which is what a ±10 %
accuracy target rewards. Weights are saved as a plain ``state_dict`` (``torch.save``) and read
with ``weights_only=True``; scalers, bin edges and architecture go to JSON. Nothing is pickled.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hwlat.errors import PredictorError
from hwlat.predictors.calibration import calibration, widen
from hwlat.predictors.encoding import PiecewiseLinear

#: z for a two-sided 90 % interval, matching the GBDT's 5 %/95 % quantiles.
_Z90 = 1.6448536269514722


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch single-threaded and restore the caller's setting afterwards.

    These nets are tiny: intra-op threads only add synchronisation, and on a busy machine the
    spinning worker threads made a 2-thread fit ~80x slower than a 1-thread one.
    """
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


def _scaler(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and standard deviations; constant columns get 1 so they stay at 0."""
    std = X.std(axis=0)
    return X.mean(axis=0), np.where(std > 0, std, 1.0)


def _net(n_in: int, hidden: tuple[int, ...], dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    prev = n_in
    for h in hidden:
        layers += [nn.Linear(prev, h), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        prev = h
    layers.append(nn.Linear(prev, 1))
    return nn.Sequential(*layers)


#: bound of a member's output, in standard deviations of the training labels (log space)
Z_MAX = 8.0


class MLPRegressor:
    """Ensemble of ``n_models`` MLPs regressing log-latency."""

    kind = "mlp"

    def __init__(self, hidden: tuple[int, ...] = (128, 128), n_models: int = 3, max_epochs: int = 400,
                 lr: float = 2e-3, weight_decay: float = 1e-4, batch_size: int = 64, val_frac: float = 0.15,
                 patience: int = 30, dropout: float = 0.0, seed: int = 0, bins: tuple[int, ...] = (),
                 huber_delta: float | None = None) -> None:
        self.hidden = tuple(int(h) for h in hidden)
        self.bins = tuple(int(b) for b in bins)
        self.huber_delta = huber_delta
        self.n_models = n_models
        self.max_epochs = max_epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.val_frac = val_frac
        self.patience = patience
        self.dropout = dropout
        self.seed = seed
        self.x_mean_: np.ndarray | None = None
        self.x_std_: np.ndarray | None = None
        self.y_mean_: float = 0.0
        self.y_std_: float = 1.0
        self.epochs_: list[int] = []
        self.calibration_: dict[str, float] | None = None
        self._nets: list[nn.Sequential] = []
        # Bin count -> (encoder, mean, std) of its encoded columns; 0 is the raw features.
        self._inputs: dict[int, tuple[PiecewiseLinear | None, np.ndarray, np.ndarray]] = {}

    def _member_bins(self, m: int) -> int:
        return self.bins[m % len(self.bins)] if self.bins else 0

    def _fit_inputs(self, X: np.ndarray) -> None:
        self.x_mean_, self.x_std_ = _scaler(X)
        self._inputs = {0: (None, self.x_mean_, self.x_std_)}
        for b in sorted(set(self.bins) - {0}):
            enc = PiecewiseLinear(b).fit(X)
            self._inputs[b] = (enc, *_scaler(enc.transform(X)))

    def _xs(self, X: np.ndarray, n_models: int) -> dict[int, torch.Tensor]:
        """Standardized inputs of every encoding the first ``n_models`` members use, by bin count."""
        out = {}
        for b in {self._member_bins(m) for m in range(n_models)}:
            enc, mean, std = self._inputs[b]
            E = enc.transform(X) if enc is not None else X
            out[b] = torch.as_tensor((E - mean) / std, dtype=torch.float32)
        return out

    def _loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.huber_delta:
            return nn.functional.huber_loss(pred, target, delta=self.huber_delta / self.y_std_)
        return nn.functional.mse_loss(pred, target)

    def _fit_one(self, Xs: torch.Tensor, ys: torch.Tensor, seed: int) -> tuple[nn.Sequential, int, np.ndarray]:
        """One member: the net, its best epoch, and its standardized errors on its validation rows."""
        gen = torch.Generator().manual_seed(seed)
        n = len(ys)
        perm = torch.randperm(n, generator=gen)
        n_val = max(1, int(round(self.val_frac * n))) if n >= 5 else 0
        val, tr = perm[:n_val], perm[n_val:]
        # Layer init draws from torch's global generator: seed it inside a fork so the caller's
        # RNG state is left as it was.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = _net(Xs.shape[1], self.hidden, self.dropout)
        opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        best, best_state, best_epoch, bad = float("inf"), None, 0, 0
        bs = min(self.batch_size, len(tr))
        for epoch in range(self.max_epochs):
            net.train()
            order = tr[torch.randperm(len(tr), generator=gen)]
            for i in range(0, len(order), bs):
                b = order[i:i + bs]
                opt.zero_grad()
                loss = self._loss(net(Xs[b]).squeeze(1), ys[b])
                loss.backward()
                opt.step()
            if n_val == 0:
                continue
            net.eval()
            with torch.no_grad():
                v = float(self._loss(net(Xs[val]).squeeze(1), ys[val]))
            if v < best - 1e-6:
                best, best_epoch, bad = v, epoch + 1, 0
                best_state = {k: t.clone() for k, t in net.state_dict().items()}
            else:
                bad += 1
                if bad >= self.patience:
                    break
        if best_state is not None:
            net.load_state_dict(best_state)
        else:
            best_epoch = self.max_epochs
        net.eval()
        with torch.no_grad():
            err = (ys[val] - net(Xs[val]).squeeze(1)).numpy().astype(np.float64) if n_val else np.zeros(0)
        return net, best_epoch, err

    def fit(self, X: np.ndarray, y: np.ndarray) -> MLPRegressor:
        """Fit on features ``X`` (n, d) and positive latencies ``y`` (n,)."""
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64).ravel()
        if X.ndim != 2 or X.shape[0] != y.shape[0]:
            raise ValueError(f"X must be (n, d) with n == len(y); got {X.shape} and {y.shape}")
        if not np.all(np.isfinite(y)) or np.any(y <= 0):
            raise ValueError("latencies must be finite and > 0 (the model is fitted on log-latency)")
        self._fit_inputs(X)
        ylog = np.log(y)
        self.y_mean_ = float(ylog.mean())
        self.y_std_ = float(ylog.std()) or 1.0
        Xs = self._xs(X, self.n_models)
        ys = torch.as_tensor((ylog - self.y_mean_) / self.y_std_, dtype=torch.float32)
        self._nets, self.epochs_ = [], []
        errs = []
        with _one_thread():
            for m in range(self.n_models):
                net, ep, err = self._fit_one(Xs[self._member_bins(m)], ys, self.seed * 1000 + m)
                self._nets.append(net)
                self.epochs_.append(ep)
                errs.append(err)
        # A member's validation rows are out-of-sample for it (early stopping saw them, so this is
        # slightly optimistic); the ensemble mean averages member errors, so this is conservative.
        self.calibration_ = calibration(np.concatenate(errs) * self.y_std_)
        return self

    def _member_logs(self, X: np.ndarray) -> np.ndarray:
        if not self._nets:
            raise PredictorError("MLP predictor is not fitted; call fit() or load a trained one first")
        X = np.asarray(X, dtype=np.float64)
        assert self.x_mean_ is not None
        if X.ndim != 2 or X.shape[1] != len(self.x_mean_):
            raise ValueError(f"X must be (n, {len(self.x_mean_)}), got {X.shape}")
        Xs = self._xs(X, len(self._nets))
        with torch.no_grad(), _one_thread():
            outs = [net(Xs[self._member_bins(m)]).squeeze(1).numpy().astype(np.float64)
                    for m, net in enumerate(self._nets)]
        # Far outside its training data a member can extrapolate to exp() overflow (seen on a Swin
        # network's kernels held out of training): inf would poison every sum it enters. Bound each
        # member at Z_MAX standard deviations of the training labels; such inputs are flagged
        # out of range and their intervals widened anyway.
        return np.clip(np.stack(outs), -Z_MAX, Z_MAX) * self.y_std_ + self.y_mean_

    def predict(self, X: np.ndarray, return_interval: bool = False
                ) -> np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Predicted latency; with ``return_interval=True`` also a 90 % interval: mean ∓ 1.645 ×
        member spread (in log space), widened to the members' out-of-sample error quantiles."""
        logs = self._member_logs(X)
        mu = logs.mean(axis=0)
        mean = np.exp(mu)
        if not return_interval:
            return mean
        sd = logs.std(axis=0, ddof=1) if len(logs) > 1 else np.zeros_like(mu)
        return widen(mean, np.exp(mu - _Z90 * sd), np.exp(mu + _Z90 * sd), self.calibration_)

    # -- persistence ---------------------------------------------------------------------------
    def _meta(self) -> dict[str, Any]:
        assert self.x_mean_ is not None and self.x_std_ is not None
        encodings = {str(b): {**enc.to_json(), "mean": mean.tolist(), "std": std.tolist()}
                     for b, (enc, mean, std) in self._inputs.items() if enc is not None}
        return {"architecture": {"n_in": len(self.x_mean_), "hidden": list(self.hidden), "dropout": self.dropout,
                                 "n_models": len(self._nets), "activation": "relu", "bins": list(self.bins)},
                "scaler": {"x_mean": self.x_mean_.tolist(), "x_std": self.x_std_.tolist(),
                           "y_mean": self.y_mean_, "y_std": self.y_std_, "target": "log(latency_ms)"},
                "encodings": encodings,
                "train": {"lr": self.lr, "weight_decay": self.weight_decay, "batch_size": self.batch_size,
                          "val_frac": self.val_frac, "patience": self.patience, "max_epochs": self.max_epochs,
                          "seed": self.seed, "epochs": self.epochs_, "huber_delta": self.huber_delta},
                "calibration": self.calibration_}

    def save(self, directory: str | Path) -> list[str]:
        """Write ``mlp.pt`` (state_dicts only) and ``mlp.json`` into ``directory``."""
        if not self._nets:
            raise PredictorError("cannot save an unfitted MLP predictor; call fit() first")
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        state = {f"{i}.{k}": t for i, net in enumerate(self._nets) for k, t in net.state_dict().items()}
        torch.save(state, d / "mlp.pt")
        (d / "mlp.json").write_text(json.dumps(self._meta(), indent=1))
        return ["mlp.json", "mlp.pt"]

    @classmethod
    def load(cls, directory: str | Path) -> MLPRegressor:
        """Read a model written by :meth:`save` (``torch.load(weights_only=True)``)."""
        d = Path(directory)
        try:
            meta = json.loads((d / "mlp.json").read_text())
            state = torch.load(d / "mlp.pt", weights_only=True, map_location="cpu")
            arch, sc, tr = meta["architecture"], meta["scaler"], meta["train"]
            model = cls(hidden=tuple(arch["hidden"]), n_models=arch["n_models"], dropout=arch["dropout"],
                        lr=tr["lr"], weight_decay=tr["weight_decay"], batch_size=tr["batch_size"],
                        val_frac=tr["val_frac"], patience=tr["patience"], max_epochs=tr["max_epochs"],
                        seed=tr["seed"], bins=tuple(arch.get("bins", ())), huber_delta=tr.get("huber_delta"))
            model.x_mean_ = np.asarray(sc["x_mean"], dtype=np.float64)
            model.x_std_ = np.asarray(sc["x_std"], dtype=np.float64)
            model._inputs = {0: (None, model.x_mean_, model.x_std_)}
            for b, e in meta.get("encodings", {}).items():
                model._inputs[int(b)] = (PiecewiseLinear.from_json(e), np.asarray(e["mean"], dtype=np.float64),
                                         np.asarray(e["std"], dtype=np.float64))
            model.y_mean_, model.y_std_ = float(sc["y_mean"]), float(sc["y_std"])
            model.epochs_ = list(tr.get("epochs", []))
            model.calibration_ = meta.get("calibration")
            for i in range(arch["n_models"]):
                enc = model._inputs[model._member_bins(i)][0]
                net = _net(enc.n_out if enc is not None else arch["n_in"], model.hidden, model.dropout)
                prefix = f"{i}."
                net.load_state_dict({k[len(prefix):]: t for k, t in state.items() if k.startswith(prefix)})
                net.eval()
                model._nets.append(net)
        except (OSError, ValueError, KeyError, RuntimeError, TypeError) as e:
            raise PredictorError(f"MLP model files in {d} are missing or unreadable ({e}); "
                                 f"retrain with `hwlat train DEVICE`") from None
        return model
