"""Train the analysis's beat network and write ``kapsule/analysis/beat_net.npz``.

    make train-beats          # = render the training pieces (cached), train, export (~30 min, 2 cores)

Needs PyTorch (CPU is enough: ``pip install torch``) and the benchmark extras (FluidSynth, mido).
The product never imports torch: ``beat_net.py`` runs the exported weights with numpy, and a test
checks that both forward passes agree.

What it optimises: per-frame binary cross-entropy of the beat and downbeat outputs against the true
beats of the training pieces (each target widened to its two neighbouring frames at half weight, as
in Böck & Davies 2019, so a hit one frame early is not punished as hard as a miss). Augmentation on
top of the renders' own variety: a time stretch of ±20 % (the labels move with it), a spectral tilt
(a cheap EQ), a raised noise floor and masked bands. The tuning part of the benchmark corpus is the
validation set that picks the epoch; its test part is never read here.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import corpus  # noqa: E402
from kapsule.analysis import beat_net  # noqa: E402
from kapsule.analysis.common import ANALYSIS_RATE, HOP  # noqa: E402
from kapsule.analysis.core import N_MELS  # noqa: E402
from training import beat_data  # noqa: E402

CHANNELS = 40
DILATIONS = tuple(2**k for k in range(10))  # 1 … 512 frames
CROP = 1024  # frames per training example (~24 s)


class BeatNet(nn.Module):
    """The network ``beat_net.activations`` runs: keep the two in step."""

    def __init__(
        self, channels: int = CHANNELS, dilations: tuple[int, ...] = DILATIONS, dropout: float = 0.1
    ):
        super().__init__()
        self.inp = nn.Linear(2 * N_MELS, channels)
        self.convs = nn.ModuleList(nn.Conv1d(channels, channels, 3, dilation=d, padding=d) for d in dilations)
        self.mixes = nn.ModuleList(nn.Conv1d(channels, channels, 1) for _ in dilations)
        self.dilations = dilations
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(channels, 2)

    def forward(
        self, x: torch.Tensor
    ) -> torch.Tensor:  # (batch, frames, 2·bands) -> logits (batch, frames, 2)
        h = nn.functional.elu(self.inp(x)).transpose(1, 2)
        for conv, mix in zip(self.convs, self.mixes, strict=True):
            h = h + mix(self.drop(nn.functional.elu(conv(h))))
        return self.out(h.transpose(1, 2))

    def export(self, path: Path) -> None:
        arrays: dict[str, np.ndarray] = {
            "in.w": self.inp.weight.detach().numpy().T,
            "in.b": self.inp.bias.detach().numpy(),
            "out.w": self.out.weight.detach().numpy().T,
            "out.b": self.out.bias.detach().numpy(),
        }
        for k, (conv, mix, d) in enumerate(zip(self.convs, self.mixes, self.dilations, strict=True)):
            arrays[f"b{k}.conv.w"] = conv.weight.detach().numpy().transpose(2, 1, 0)
            arrays[f"b{k}.conv.b"] = conv.bias.detach().numpy()
            arrays[f"b{k}.mix.w"] = mix.weight.detach().numpy()[:, :, 0].T
            arrays[f"b{k}.mix.b"] = mix.bias.detach().numpy()
            arrays[f"b{k}.dilation"] = np.array(d)
        np.savez(path, **{k: v.astype(np.float32) if v.dtype.kind == "f" else v for k, v in arrays.items()})


def widened(labels: np.ndarray) -> np.ndarray:
    target = labels.astype(np.float32)
    near = np.maximum(np.roll(target, 1), np.roll(target, -1)) * 0.5
    return np.maximum(target, near)


def load_examples(paths: list[Path]) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for path in paths:
        with np.load(path) as d:
            level = d["x"][:, :N_MELS].astype(np.float32)
            out.append((level, np.stack([d["beats"], d["downbeats"]], axis=1).astype(np.float32)))
    return out


def stretched(level: np.ndarray, labels: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """The frames played ``factor`` times faster (linear interpolation), labels moved with them."""
    length = max(8, int(level.shape[0] / factor))
    src = np.minimum(np.arange(length) * factor, level.shape[0] - 1.001)
    lo = np.floor(src).astype(int)
    frac = (src - lo)[:, None]
    out = level[lo] * (1 - frac) + level[lo + 1] * frac
    new_labels = np.zeros((length, 2), np.float32)
    for j in range(2):
        frames = np.round(np.flatnonzero(labels[:, j]) / factor).astype(int)
        new_labels[frames[frames < length], j] = 1
    return out, new_labels


def batch(
    examples: list[tuple[np.ndarray, np.ndarray]], size: int, rng: np.random.Generator
) -> tuple[torch.Tensor, ...]:
    xs = np.zeros((size, CROP, 2 * N_MELS), np.float32)
    ys = np.zeros((size, CROP, 2), np.float32)
    mask = np.zeros((size, CROP), np.float32)
    bands = np.linspace(-0.5, 0.5, N_MELS, dtype=np.float32)
    for i in range(size):
        level, labels = examples[int(rng.integers(len(examples)))]
        level, labels = stretched(level, labels, float(np.exp(rng.uniform(-0.2, 0.2))))
        start = int(rng.integers(0, max(1, level.shape[0] - CROP)))
        level, labels = level[start : start + CROP].copy(), labels[start : start + CROP]
        level = np.clip(level + rng.uniform(-0.12, 0.12) * bands, 0.0, 1.0)  # tilt
        if rng.random() < 0.3:
            level = np.maximum(level, rng.uniform(0.2, 0.45))  # a noise floor
        if rng.random() < 0.5:
            lo = int(rng.integers(0, N_MELS - 12))
            level[:, lo : lo + int(rng.integers(4, 12))] = 0.0  # a masked band
        rise = np.maximum(np.diff(level, axis=0, prepend=level[:1]), 0.0)
        n = level.shape[0]
        xs[i, :n] = np.concatenate([level, rise], axis=1)
        ys[i, :n, 0], ys[i, :n, 1] = widened(labels[:, 0]), widened(labels[:, 1])
        mask[i, :n] = 1.0
    return torch.from_numpy(xs), torch.from_numpy(ys), torch.from_numpy(mask)


def validation_set() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The tuning part of the benchmark corpus (never its test part)."""
    out = []
    for spec in corpus.SPECS:
        if corpus.part(spec.name) != "tuning":
            continue
        x, labels = beat_data.network_example(*corpus.render(spec))
        y = np.stack([widened(labels[:, 0]), widened(labels[:, 1])], axis=1)
        out.append((torch.from_numpy(x[None]), torch.from_numpy(y[None])))
    return out


def peak_f(act: np.ndarray, labels: np.ndarray, threshold: float = 0.3) -> float:
    """F-measure of activation peaks above ``threshold`` against the true frames (±2 frames ≈ 46 ms)."""
    peaks = np.flatnonzero((act[1:-1] > act[:-2]) & (act[1:-1] >= act[2:]) & (act[1:-1] > threshold)) + 1
    truth = np.flatnonzero(labels >= 1.0)
    if peaks.size == 0 or truth.size == 0:
        return 0.0
    hits = sum(bool(np.any(np.abs(truth - p) <= 2)) for p in peaks)
    precision, recall = hits / peaks.size, min(1.0, hits / truth.size)
    return 0.0 if hits == 0 else 2 * precision * recall / (precision + recall)


def evaluate(model: BeatNet, valid: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[float, float, float]:
    model.eval()
    losses, beat_f, down_f = [], [], []
    with torch.no_grad():
        for x, y in valid:
            logits = model(x)
            losses.append(float(nn.functional.binary_cross_entropy_with_logits(logits, y)))
            p = torch.sigmoid(logits)[0].numpy()
            beat_f.append(peak_f(p[:, 0], y[0, :, 0].numpy()))
            down_f.append(peak_f(p[:, 1], y[0, :, 1].numpy()))
    model.train()
    return float(np.mean(losses)), float(np.mean(beat_f)), float(np.mean(down_f))


def main() -> int:
    parser = argparse.ArgumentParser(description="train the beat network")
    parser.add_argument("--pieces", type=int, default=900)
    parser.add_argument("--steps", type=int, default=7000)
    parser.add_argument("--batch", type=int, default=12)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=beat_net.WEIGHTS)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    paths = beat_data.build(args.pieces, args.workers)
    examples = load_examples(paths)
    valid = validation_set()
    print(
        f"{len(examples)} training pieces "
        f"({sum(e[0].shape[0] for e in examples) * HOP / ANALYSIS_RATE / 60:.0f} min), "
        f"{len(valid)} validation pieces",
        flush=True,
    )
    model = BeatNet()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.1)
    best = -math.inf
    started = time.monotonic()
    running = 0.0
    for step in range(1, args.steps + 1):
        x, y, mask = batch(examples, args.batch, rng)
        logits = model(x)
        loss = (
            nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none").mean(-1) * mask
        ).sum() / mask.sum()
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        running = 0.98 * running + 0.02 * loss.item() if step > 1 else loss.item()
        if step % 250 == 0 or step == args.steps:
            v_loss, v_beat, v_down = evaluate(model, valid)
            score = v_beat + v_down
            mark = ""
            if score > best:
                best = score
                model.export(args.out)
                mark = "  saved"
            print(
                f"step {step:5d}  train loss {running:.4f}  valid loss {v_loss:.4f}  "
                f"beat peak F {v_beat:.3f}  downbeat peak F {v_down:.3f}  "
                f"{time.monotonic() - started:.0f} s{mark}",
                flush=True,
            )
    check_export(args.out, valid[0][0])
    print(f"wrote {args.out}")
    return 0


def check_export(path: Path, x: torch.Tensor) -> None:
    """The numpy forward pass of the product on the exported weights equals torch's on the same input."""
    model = BeatNet()
    with np.load(path) as w:
        model.inp.weight.data = torch.from_numpy(w["in.w"].T.copy())
        model.inp.bias.data = torch.from_numpy(w["in.b"])
        model.out.weight.data = torch.from_numpy(w["out.w"].T.copy())
        model.out.bias.data = torch.from_numpy(w["out.b"])
        for k, (conv, mix) in enumerate(zip(model.convs, model.mixes, strict=True)):
            conv.weight.data = torch.from_numpy(w[f"b{k}.conv.w"].transpose(2, 1, 0).copy())
            conv.bias.data = torch.from_numpy(w[f"b{k}.conv.b"])
            mix.weight.data = torch.from_numpy(w[f"b{k}.mix.w"].T.copy()[:, :, None])
            mix.bias.data = torch.from_numpy(w[f"b{k}.mix.b"])
    model.eval()
    with torch.no_grad():
        expected = torch.sigmoid(model(x))[0].numpy()
    beat_net.WEIGHTS = path
    beat_net._weights.cache_clear()
    level = x[0, :, :N_MELS].numpy()
    mel_db = (level.T - 1.0) * beat_net.DB_RANGE
    got = np.stack(beat_net.activations(mel_db), axis=1)
    error = float(np.abs(got - expected).max())
    if error > 1e-4:
        raise SystemExit(f"the numpy forward pass differs from torch's by {error:.2e}")
    print(f"numpy forward pass = torch's (max difference {error:.1e})")


if __name__ == "__main__":
    sys.exit(main())
