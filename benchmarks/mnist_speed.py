"""Deep SAD training throughput on MNIST: sadkit against a reference-style pipeline, in one run.

What is compared (same data, network, initial weights, optimiser, batch size and epochs):

* ``reference``: the Deep SAD reference code's input pipeline and layers. A ``torch.utils.data.Dataset``
  whose ``__getitem__`` turns each uint8 image into a PIL image and then into a float tensor
  (``transforms.ToTensor()``, re-implemented here because sadkit does not depend on torchvision), a
  ``DataLoader`` (batch 128, shuffled, no workers: the reference's default), ``loss.item()`` after
  every batch, and the reference's modules (``nn.ConvTranspose2d`` after ``F.interpolate``, NCHW).
* ``sadkit``: ``DeepSAD`` with its defaults (the training set in one tensor, batches are index slices,
  one host sync per epoch, channels-last image batches, the decoder's fused polyphase upsampling, the
  encoder's pooling before BatchNorm and LeakyReLU).
* ``sadkit-plain`` (optional): sadkit's loop with the reference's layers (NCHW, interpolate +
  transposed convolution, BatchNorm -> LeakyReLU -> pool): what the tensor-resident loop alone gives.

Setting: MNIST, normal class 0, gamma_l = 0.01 (one known anomaly class drawn by the seed),
gamma_p = 0.1, no validation split, the whole test set for the AUROC. Throughput is
``n_train * epochs / seconds`` for autoencoder pretraining and Deep SAD training separately and
combined (pretraining counts as much as training). Each pipeline runs in a fresh process (so peak
memory is its own); repeats are interleaved (reference, sadkit, ..., reference, sadkit, ...) so that
load from other jobs hits all pipelines alike. Seconds are wall-clock and, on CPU, also process CPU
time: on a shared machine the CPU-time ratio is the steadier one.

Run (from the repository root; MNIST in ../shared/data or $SADKIT_DATA)::

    python benchmarks/mnist_speed.py --epochs 3 --repeats 2 --threads 1 --out results/mnist_speed
    python benchmarks/mnist_speed.py --device cuda --epochs 10 --amp bf16   # on a GPU

It prints a Markdown table and writes ``results.json`` and ``table.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BATCH = 128


# --------------------------------------------------------------------------------------------------
# the reference-style pipeline (the Deep SAD reference code's way)
# --------------------------------------------------------------------------------------------------


def reference_modules():
    """The reference's MNIST LeNet and autoencoder, layer by layer (Deep-SAD-PyTorch/src/networks)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class MNISTLeNet(nn.Module):
        def __init__(self, rep_dim: int = 32):
            super().__init__()
            self.rep_dim = rep_dim
            self.pool = nn.MaxPool2d(2, 2)
            self.conv1 = nn.Conv2d(1, 8, 5, bias=False, padding=2)
            self.bn1 = nn.BatchNorm2d(8, eps=1e-04, affine=False)
            self.conv2 = nn.Conv2d(8, 4, 5, bias=False, padding=2)
            self.bn2 = nn.BatchNorm2d(4, eps=1e-04, affine=False)
            self.fc1 = nn.Linear(4 * 7 * 7, self.rep_dim, bias=False)

        def forward(self, x):
            x = x.view(-1, 1, 28, 28)
            x = self.conv1(x)
            x = self.pool(F.leaky_relu(self.bn1(x)))
            x = self.conv2(x)
            x = self.pool(F.leaky_relu(self.bn2(x)))
            x = x.view(int(x.size(0)), -1)
            return self.fc1(x)

    class MNISTLeNetDecoder(nn.Module):
        def __init__(self, rep_dim: int = 32):
            super().__init__()
            self.rep_dim = rep_dim
            self.deconv1 = nn.ConvTranspose2d(2, 4, 5, bias=False, padding=2)
            self.bn3 = nn.BatchNorm2d(4, eps=1e-04, affine=False)
            self.deconv2 = nn.ConvTranspose2d(4, 8, 5, bias=False, padding=3)
            self.bn4 = nn.BatchNorm2d(8, eps=1e-04, affine=False)
            self.deconv3 = nn.ConvTranspose2d(8, 1, 5, bias=False, padding=2)

        def forward(self, x):
            x = x.view(int(x.size(0)), int(self.rep_dim / 16), 4, 4)
            x = F.interpolate(F.leaky_relu(x), scale_factor=2)
            x = self.deconv1(x)
            x = F.interpolate(F.leaky_relu(self.bn3(x)), scale_factor=2)
            x = self.deconv2(x)
            x = F.interpolate(F.leaky_relu(self.bn4(x)), scale_factor=2)
            x = self.deconv3(x)
            return torch.sigmoid(x)  # (n, 1, 28, 28): the input's shape (the reference squeezes it)

    class MNISTLeNetAutoencoder(nn.Module):
        def __init__(self, rep_dim: int = 32):
            super().__init__()
            self.encoder = MNISTLeNet(rep_dim)
            self.decoder = MNISTLeNetDecoder(rep_dim)

        def forward(self, x):
            return self.decoder(self.encoder(x))

    return MNISTLeNet, MNISTLeNetAutoencoder


def pil_to_tensor(pic):
    """``torchvision.transforms.ToTensor()`` for a PIL 'L' image (its code path, without torchvision)."""
    import numpy as np
    import torch

    img = torch.from_numpy(np.array(pic, np.uint8, copy=True))
    img = img.view(pic.size[1], pic.size[0], 1).permute((2, 0, 1)).contiguous()
    return img.to(dtype=torch.get_default_dtype()).div(255)


def make_reference_loader(images_uint8, targets, semi_targets, shuffle: bool):
    import torch
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset

    class MyMNIST(Dataset):
        """As the reference's ``MyMNIST``: index -> (image tensor, target, semi target, index)."""

        def __init__(self):
            self.data = torch.as_tensor(images_uint8)
            self.targets = torch.as_tensor(targets)
            self.semi_targets = torch.as_tensor(semi_targets)

        def __len__(self):
            return len(self.data)

        def __getitem__(self, index):
            img, target, semi_target = self.data[index], int(self.targets[index]), int(self.semi_targets[index])
            img = Image.fromarray(img.numpy(), mode="L")
            img = pil_to_tensor(img)
            return img, target, semi_target, index

    return DataLoader(MyMNIST(), batch_size=BATCH, shuffle=shuffle, num_workers=0)


def run_reference(train, test, args, device, initial_state) -> dict[str, Any]:
    import numpy as np
    import torch

    from sadkit import auroc
    from sadkit.plugins.deepsad.autoencoder import reconstruction_loss

    Net, AE = reference_modules()
    images = np.rint(train.X[:, 0] * 255).astype(np.uint8)
    loader = make_reference_loader(images, train.y, train.semi_y, shuffle=True)
    ae = AE().to(device)
    ae.load_state_dict(initial_state["ae"])
    times: dict[str, tuple[float, float]] = {}

    # --- autoencoder pretraining (as AETrainer.train)
    optimizer = torch.optim.Adam(ae.parameters(), lr=args.lr, weight_decay=1e-6)
    clock = Clock(device)
    ae.train()
    for _ in range(args.epochs):
        epoch_loss = 0.0
        for inputs, _, _, _ in loader:
            inputs = inputs.to(device)
            optimizer.zero_grad()
            loss = reconstruction_loss(ae, inputs)
            loss.backward()
            optimizer.step()
            epoch_loss += loss.item()
    times["pretrain"] = clock.stop()

    # --- Deep SAD (as DeepSADTrainer: init_center_c on the train loader, then the epochs)
    net = Net().to(device)
    net.load_state_dict(ae.encoder.state_dict())
    net.eval()
    n_samples, c = 0, torch.zeros(net.rep_dim, device=device)
    with torch.no_grad():
        for inputs, _, _, _ in loader:
            outputs = net(inputs.to(device))
            n_samples += outputs.shape[0]
            c += torch.sum(outputs, dim=0)
    c /= n_samples
    c[(abs(c) < 0.1) & (c < 0)] = -0.1
    c[(abs(c) < 0.1) & (c >= 0)] = 0.1
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr, weight_decay=1e-6)
    eta, eps = 1.0, 1e-6
    clock = Clock(device)
    net.train()
    for _ in range(args.epochs):
        epoch_loss = 0.0
        for inputs, _, semi_targets, _ in loader:
            inputs, semi_targets = inputs.to(device), semi_targets.to(device)
            optimizer.zero_grad()
            outputs = net(inputs)
            dist = torch.sum((outputs - c) ** 2, dim=1)
            losses = torch.where(semi_targets == 0, dist, eta * ((dist + eps) ** semi_targets.float()))
            loss = torch.mean(losses)
            loss.backward()
            optimizer.step()
            epoch_loss += loss.item()
    times["train"] = clock.stop()

    # --- test (as DeepSADTrainer.test: the test loader, also through PIL)
    test_loader = make_reference_loader(
        np.rint(test.X[:, 0] * 255).astype(np.uint8), test.y, test.semi_y, shuffle=False
    )
    net.eval()
    scores = []
    with torch.no_grad():
        for inputs, _, _, _ in test_loader:
            scores.append(torch.sum((net(inputs.to(device)) - c) ** 2, dim=1).cpu())
    return {"times": times, "test_auroc": auroc(test.y, torch.cat(scores).numpy())}


# --------------------------------------------------------------------------------------------------
# sadkit
# --------------------------------------------------------------------------------------------------


def run_sadkit(train, test, args, device, initial_state, plain: bool) -> dict[str, Any]:
    from sadkit import Callback, auroc
    from sadkit.plugins.deepsad.detector import DeepSAD

    class PhaseClock(Callback):
        def __init__(self):
            self.times: dict[str, tuple[float, float]] = {}
            self._clock = None

        def on_phase_start(self, phase: str, n_epochs: int) -> None:
            self._clock = Clock(device)

        def on_phase_end(self, phase: str) -> None:
            self.times[phase] = self._clock.stop()

    options = (
        {"channels_last": False, "net_params": {"fused_upsampling": False, "fused_pooling": False}} if plain else {}
    )
    detector = DeepSAD(
        net_name="mnist_lenet",
        n_epochs=args.epochs,
        ae_n_epochs=args.epochs,
        lr=args.lr,
        ae_lr=args.lr,
        lr_milestones=(),
        ae_lr_milestones=(),
        batch_size=BATCH,
        ae_batch_size=BATCH,
        device=str(device),
        seed=args.seed,
        amp=args.amp,
        compile=args.compile,
        **options,
    )
    clock = PhaseClock()
    detector.fit(train.X, semi_y=train.semi_y, callbacks=[clock])
    return {"times": clock.times, "test_auroc": auroc(test.y, detector.decision_function(test.X))}


# --------------------------------------------------------------------------------------------------
# one pipeline in its own process
# --------------------------------------------------------------------------------------------------


class Clock:
    """Wall-clock and process CPU seconds between construction and ``stop()`` (synchronising CUDA)."""

    def __init__(self, device):
        self.device = device
        self._sync()
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def _sync(self) -> None:
        import torch

        if getattr(self.device, "type", str(self.device)) == "cuda":
            torch.cuda.synchronize(self.device)

    def stop(self) -> tuple[float, float]:
        self._sync()
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def pipeline(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from sadkit import create_network
    from sadkit.plugins.datasets.images import MNIST
    from sadkit.training import configure_threads, resolve_device, seed_everything

    configure_threads(args.threads)
    device = resolve_device(args.device)
    ds = MNIST(
        root=args.root,
        normal_class=args.normal_class,
        known_outlier_class=None,
        n_known_outlier_classes=1,
        ratio_known_outlier=0.01,
        ratio_pollution=0.1,
        val_fraction=0.0,
        seed=args.seed,
    )
    train, _, test = ds.load()
    # the initial weights sadkit's DeepSAD draws with this seed (network first, then the autoencoder)
    seed_everything(args.seed)
    create_network("mnist_lenet", (1, 28, 28))
    ae = create_network("mnist_lenet", (1, 28, 28), autoencoder=True)
    initial_state = {"ae": ae.state_dict()}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rss_before = current_rss_mb()
    if kind == "reference":
        seed_everything(args.seed)
        result = run_reference(train, test, args, device, initial_state)
    else:
        result = run_sadkit(train, test, args, device, initial_state, plain=kind == "sadkit-plain")
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    result.update(
        kind=kind,
        n_train=len(train),
        known_outlier_classes=ds.known_outlier_classes,
        peak_rss_mb=peak_rss,
        rss_before_training_mb=rss_before,
        cuda_peak_mb=torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
        device=str(device),
        threads=torch.get_num_threads(),
    )
    return result


def _child(kind: str, args: argparse.Namespace, queue) -> None:
    try:
        queue.put(pipeline(kind, args))
    except BaseException as err:  # report, do not hang the parent
        queue.put({"kind": kind, "error": f"{type(err).__name__}: {err}"})


def run_in_process(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(kind, args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    if "error" in result:
        raise SystemExit(f"{kind} failed: {result['error']}")
    return result


# --------------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------------


def summarise(runs: list[dict[str, Any]], epochs: int) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for kind in dict.fromkeys(r["kind"] for r in runs):
        mine = [r for r in runs if r["kind"] == kind]
        n = mine[0]["n_train"]
        row: dict[str, Any] = {"n_train": n, "repeats": len(mine)}
        for clock, i in (("wall", 0), ("cpu", 1)):
            pre = statistics.median(r["times"]["pretrain"][i] for r in mine)
            tr = statistics.median(r["times"]["train"][i] for r in mine)
            both = statistics.median(r["times"]["pretrain"][i] + r["times"]["train"][i] for r in mine)
            row[clock] = {
                "pretrain_s_per_epoch": pre / epochs,
                "train_s_per_epoch": tr / epochs,
                "pretrain_samples_per_s": n * epochs / pre,
                "train_samples_per_s": n * epochs / tr,
                "combined_samples_per_s": 2 * n * epochs / both,
            }
        row["test_auroc"] = [r["test_auroc"] for r in mine]
        row["peak_rss_mb"] = max(r["peak_rss_mb"] for r in mine)
        row["training_rss_increase_mb"] = max(r["peak_rss_mb"] - r["rss_before_training_mb"] for r in mine)
        row["cuda_peak_mb"] = mine[0]["cuda_peak_mb"]
        out[kind] = row
    return out


def table(summary: dict[str, dict[str, Any]], clock: str) -> str:
    ref = summary.get("reference")
    lines = [
        f"| pipeline ({clock} clock) | pretrain samples/s | train samples/s | combined samples/s"
        " | ratio (pretrain / train / combined) | test AUROC | peak RSS MB (+ during training) |",
        "|---|---:|---:|---:|---|---|---:|",
    ]
    for kind, row in summary.items():
        s = row[clock]
        if ref is not None:
            r = ref[clock]
            ratio = " / ".join(
                f"{s[k] / r[k]:.2f}x"
                for k in ("pretrain_samples_per_s", "train_samples_per_s", "combined_samples_per_s")
            )
        else:
            ratio = ""
        aurocs = ", ".join(f"{100 * a:.2f}" for a in row["test_auroc"])
        mem = f"{row['peak_rss_mb']:.0f} (+{row['training_rss_increase_mb']:.0f})"
        if row["cuda_peak_mb"] is not None:
            mem += f"; CUDA {row['cuda_peak_mb']:.0f}"
        lines.append(
            f"| {kind} | {s['pretrain_samples_per_s']:,.0f} | {s['train_samples_per_s']:,.0f} |"
            f" {s['combined_samples_per_s']:,.0f} | {ratio} | {aurocs} | {mem} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    default_root = os.environ.get("SADKIT_DATA") or str(REPO.parent / "shared" / "data")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=default_root, help="data root holding MNIST/raw (default: %(default)s)")
    parser.add_argument("--normal-class", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=3, help="autoencoder epochs = Deep SAD epochs")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of every pipeline")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--amp", default=None, help="sadkit's mixed precision: bf16 (default: float32)")
    parser.add_argument("--compile", action="store_true", help="sadkit trains through torch.compile")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved repetitions of every pipeline")
    parser.add_argument(
        "--pipelines", default="reference,sadkit,sadkit-plain", help="comma-separated: reference, sadkit, sadkit-plain"
    )
    parser.add_argument("--out", type=Path, default=None, help="write results.json and table.md here")
    args = parser.parse_args(argv)
    kinds = [k.strip() for k in args.pipelines.split(",") if k.strip()]
    unknown = set(kinds) - {"reference", "sadkit", "sadkit-plain"}
    if unknown:
        parser.error(f"unknown pipeline(s) {sorted(unknown)}")

    runs = []
    started = time.perf_counter()
    for repeat in range(args.repeats):
        for kind in kinds:
            result = run_in_process(kind, args)
            runs.append(result)
            t = result["times"]
            print(
                f"[{repeat + 1}/{args.repeats}] {kind:13s} pretrain {t['pretrain'][0]:7.1f} s wall"
                f" ({t['pretrain'][1]:7.1f} s CPU), train {t['train'][0]:7.1f} s wall ({t['train'][1]:7.1f} s CPU),"
                f" test AUROC {100 * result['test_auroc']:.2f}",
                file=sys.stderr,
                flush=True,
            )
    summary = summarise(runs, args.epochs)
    import torch

    header = (
        f"MNIST normal class {args.normal_class}, gamma_l 0.01, gamma_p 0.1, batch {BATCH}, {runs[0]['n_train']}"
        f" training samples, {args.epochs} autoencoder + {args.epochs} Deep SAD epochs, device {runs[0]['device']},"
        f" {runs[0]['threads']} torch thread(s), amp {args.amp or 'off'}, compile {args.compile},"
        f" {args.repeats} interleaved repeat(s) (medians); torch {torch.__version__},"
        f" {platform.processor() or platform.machine()},"
        f" {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    text = header + "\n\n" + table(summary, "wall")
    if runs[0]["device"] == "cpu":
        text += "\n\n" + table(summary, "cpu")
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "table.md").write_text(text + "\n")
        payload = {"args": {k: str(v) for k, v in vars(args).items()}, "summary": summary, "runs": runs}
        payload["seconds"] = time.perf_counter() - started
        (args.out / "results.json").write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
