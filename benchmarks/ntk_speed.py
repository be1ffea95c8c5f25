"""Speed, memory and accuracy of the NTK engine against the official-style per-sample loop.

Everything is measured in this process, on the same network, probe batch and thread count:

* ``official loop``: the paper's code pattern — ``model(x)``, then for each sample
  ``logits[i:i+1].backward(ones, retain_graph=True)`` and the ``.grad`` of every ``weight`` outside
  the classifier, ``zero_grad`` in between;
* ``floor`` (train mode only): one forward plus n full-batch backward passes to the selected
  weights, the least work any exact method needs when BatchNorm couples the samples; timed in
  the contiguous layout and channels-last (probe and conv weights), and the faster of the two is
  the floor;
* ``lga_lightning``: ``empirical_ntk(..., implementation=...)`` for each ``--implementations``
  (default ``auto``);
* with ``--channels-last-official``, the official loop once more on a channels-last copy of the
  probe (as ``permute``-ing NHWC images yields): every layer, BatchNorm included, then runs
  channels-last, which shows what that layout costs in accuracy.

For each kernel it prints the wall time and the process CPU time, the CPU-time ratio to the
official loop (``x official``, above 1 = slower) and to the floor (CPU time, because on a shared
machine wall time includes waiting for a core; see ``_measure.py``), the peak resident memory
above the starting point, and the error against a float64 reference (the official loop run on
a float64 copy of the model and probe): ``max err`` = max |K - K64| / max |K64| and
``fro err`` = ||K - K64||_F / ||K64||_F. The probe is contiguous (N, C, H, W), as a data loader
of ``ToTensor`` images yields it. A second table shows the peak memory of the batched
per-sample path as n grows, with and without ``chunk_size``.

Usage::

    python benchmarks/ntk_speed.py --threads 1                  # n = 64 and 256, NB201 C=16 N=5
    python benchmarks/ntk_speed.py --threads 1 --sizes 64 --memory-sizes
    python benchmarks/ntk_speed.py --sizes 32 --C 8 --N 1 --implementations auto loop
    python benchmarks/ntk_speed.py --threads 1 --tutorial 32 --sizes --memory-sizes

``--tutorial n`` adds the peer a user would otherwise copy: the decoupled traced kernel
(``output="trace"``, eval-mode BatchNorm) as PyTorch's own NTK tutorial computes it
(``vmap(jacrev(f))`` over the samples, then one einsum per parameter), beside
``empirical_ntk(..., output="trace", bn_mode="eval")``, both against a float64 reference.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from math import nan

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(__file__))
# Measure the checkout this script lives in, not another installed copy.
sys.path.insert(1, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from _measure import measure  # noqa: E402

import lga_lightning  # noqa: E402
from lga_lightning.core.kernel import empirical_ntk  # noqa: E402
from lga_lightning.core.kernel.implementations import CHOICES  # noqa: E402
from lga_lightning.search.spaces import nb201  # noqa: E402

ARCH = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
    "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
)
_HERE = os.path.dirname(os.path.abspath(__file__))
CIFAR_CANDIDATES = [
    os.path.normpath(os.path.join(_HERE, *up, "shared", "data", "cifar10_subset.npz"))
    for up in ([".."], ["..", ".."], ["..", "..", ".."])
]


def cifar_path(given: str | None) -> str | None:
    """The CIFAR-10 subset: ``--data``, else ``shared/data`` next to or above the checkout."""
    if given:
        return given
    return next((path for path in CIFAR_CANDIDATES if os.path.exists(path)), None)


def probe_images(
    n: int, data: str | None = None, seed: int = 0, device: str = "cpu"
) -> torch.Tensor:
    return _probe_images(n, data, seed).to(device)


def _probe_images(n: int, data: str | None = None, seed: int = 0) -> torch.Tensor:
    """``n`` CIFAR-10 training images (normalised, contiguous NCHW), or Gaussian noise."""
    if data is not None:
        x = np.load(data)["train_x"][:n].astype(np.float32) / 255.0
        t = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
        return (t - t.mean(dim=(0, 2, 3), keepdim=True)) / t.std(dim=(0, 2, 3), keepdim=True)
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 32, 32, generator=g)


def official_loop(model: nn.Module, x: torch.Tensor, bn_mode: str) -> torch.Tensor:
    """The per-sample loop as the paper's code writes it (mutates .grad, like the original)."""
    model.train()
    if bn_mode == "eval":
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
    model.zero_grad()
    logits = model(x)
    rows = []
    for i in range(len(x)):
        logits[i : i + 1].backward(torch.ones_like(logits[i : i + 1]), retain_graph=True)
        rows.append(
            torch.cat(
                [
                    p.grad.reshape(-1).detach()
                    for name, p in model.named_parameters()
                    if "weight" in name and "classifier" not in name and p.grad is not None
                ]
            )
        )
        model.zero_grad()
    grads = torch.stack(rows)
    return grads @ grads.T


def backward_floor(model: nn.Module, x: torch.Tensor) -> None:
    """One forward and n full-batch backward passes (dense cotangent) to the selected weights.

    Timed twice: contiguous, and with the probe and the model's 4-d weights channels-last (the
    layout of the coupled path's convolutions); the floor is the smaller CPU time.
    """
    model.train()
    weights = [
        p for name, p in model.named_parameters() if "weight" in name and "classifier" not in name
    ]
    logits = model(x)
    ones = torch.ones_like(logits)
    for _ in range(len(x)):
        torch.autograd.grad(logits, weights, grad_outputs=ones, retain_graph=True)


def float64_reference(model: nn.Module, x: torch.Tensor, bn_mode: str) -> torch.Tensor:
    """The official loop on a float64 copy of the model and probe."""
    return official_loop(copy.deepcopy(model).double(), x.double(), bn_mode)


def errors(kernel: torch.Tensor, reference: torch.Tensor) -> tuple[float, float]:
    """(max |K - R| / max |R|, ||K - R||_F / ||R||_F) in float64."""
    diff = kernel.double() - reference
    return (
        float(diff.abs().max() / reference.abs().max()),
        float(torch.linalg.matrix_norm(diff) / torch.linalg.matrix_norm(reference)),
    )


def build(args: argparse.Namespace) -> nn.Module:
    torch.manual_seed(0)
    net = nb201.build(ARCH, C=args.C, N=args.N, affine=True, track_running_stats=True)
    return net.to(args.device)


def warm_up(args: argparse.Namespace) -> None:
    """Run every method once on a tiny probe: the first call pays one-off kernel set-up costs."""
    model = build(args)
    x = probe_images(4, args.data, device=args.device)
    for mode in args.modes:
        for implementation in args.implementations:
            empirical_ntk(model, x, bn_mode=mode, implementation=implementation)
        official_loop(model, x, mode)
    backward_floor(model, x)
    fast_model = copy.deepcopy(model).to(memory_format=torch.channels_last)
    backward_floor(fast_model, x.contiguous(memory_format=torch.channels_last))


def timed(device: str):
    """:func:`measure` that waits for the device's queued work at both ends."""
    return measure(sync=(lambda: torch.cuda.synchronize()) if device == "cuda" else None)


def cost(m, device: str) -> float:
    """What the ratios compare: CPU time on a CPU (see ``_measure.py``), wall time on a GPU."""
    return m.seconds if device == "cuda" else m.cpu_seconds


def speed_table(args: argparse.Namespace) -> list[dict]:
    warm_up(args)
    results: list[dict] = []
    threads = torch.get_num_threads()
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, threads={threads}"
    print(f"\n== speed: NB201 C={args.C} N={args.N} ({ARCH}), {where}")
    print(f"   data: {args.data or 'Gaussian noise (no CIFAR-10 subset found)'}")
    print(f"   code: {os.path.dirname(os.path.abspath(lga_lightning.__file__))}")
    header = (
        f"{'mode':<7}{'n':>5}  {'kernel':<24}{'wall s':>9}{'cpu s':>9}{'x official':>11}"
        f"{'x floor':>9}{'peak MB':>9}{'max err':>10}{'fro err':>10}"
    )
    print(header)
    for mode in args.modes:
        for n in args.sizes:
            model = build(args)
            x = probe_images(n, args.data, device=args.device)
            reference = float64_reference(model, x, mode)
            with timed(args.device) as off_m:
                official = official_loop(model, x, mode)
            floor = float("nan")
            floor_rows = []
            if mode == "train" and n <= args.floor_max:
                # The least work: in the layout each path may use, weights included.
                fast_model = copy.deepcopy(model).to(memory_format=torch.channels_last)
                for label, net, layout in (
                    ("floor, contiguous", model, torch.contiguous_format),
                    ("floor, channels-last", fast_model, torch.channels_last),
                ):
                    with timed(args.device) as floor_m:
                        backward_floor(net, x.contiguous(memory_format=layout))
                    floor_rows.append((label, floor_m, None))
                floor = min(cost(m, args.device) for _, m, _ in floor_rows)
            rows = [*floor_rows, ("official loop", off_m, official)]
            if mode == "train" and args.channels_last_official:
                with timed(args.device) as cl_m:
                    cl = official_loop(model, x.contiguous(memory_format=torch.channels_last), mode)
                rows.append(("official loop, CL input", cl_m, cl))
            for implementation in args.implementations:
                if implementation == "per_sample" and mode == "train":
                    continue  # refused: train-mode BatchNorm couples the samples
                with timed(args.device) as m:
                    kernel = empirical_ntk(
                        model,
                        x,
                        bn_mode=mode,
                        implementation=implementation,
                        chunk_size=args.chunk_size,
                    )
                rows.append((f"lga_lightning {implementation}", m, kernel))
            official_cost = cost(off_m, args.device)
            for name, m, kernel in rows:
                errs = (nan, nan) if kernel is None else errors(kernel, reference)
                shown = "" if kernel is None else "".join(f"{e:>10.1e}" for e in errs)
                peak = m.peak_device_mb if args.device == "cuda" else m.peak_extra_mb
                print(
                    f"{mode:<7}{n:>5}  {name:<24}{m.seconds:>9.2f}{m.cpu_seconds:>9.2f}"
                    f"{cost(m, args.device) / official_cost:>11.2f}"
                    f"{cost(m, args.device) / floor:>9.2f}{peak:>9.0f}{shown}",
                    flush=True,
                )
                results.append(
                    {
                        "bn_mode": mode, "n": n, "kernel": name, "wall_s": m.seconds,
                        "cpu_s": m.cpu_seconds, "x_official": cost(m, args.device) / official_cost,
                        "x_floor": cost(m, args.device) / floor, "peak_mb": peak,
                        "max_err": errs[0], "fro_err": errs[1],
                    }
                )  # fmt: skip
    return results


def tutorial_kernel(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The traced NTK as PyTorch's NTK tutorial writes it (every parameter, eval mode)."""
    from torch.func import functional_call, jacrev, vmap

    model.eval()
    params = {k: v.detach() for k, v in model.named_parameters()}

    def f(p: dict, xi: torch.Tensor) -> torch.Tensor:
        return functional_call(model, p, (xi.unsqueeze(0),)).squeeze(0)

    jac = vmap(jacrev(f), (None, 0))(params, x)
    blocks = [torch.einsum("Naf,Mbf->NMab", j.flatten(2), j.flatten(2)) for j in jac.values()]
    return torch.einsum("NMaa->NM", sum(blocks))


def tutorial_table(args: argparse.Namespace) -> list[dict]:
    """The traced eval-mode kernel: the tutorial's recipe against ``empirical_ntk``."""
    n = args.tutorial
    model = build(args).eval()
    x = probe_images(n, args.data, device=args.device)
    kwargs = {"output": "trace", "bn_mode": "eval", "param_selection": "all"}
    reference = empirical_ntk(copy.deepcopy(model).double(), x.double(), **kwargs)
    tutorial_kernel(model, x[:2])  # first-call costs stay out of the timings
    empirical_ntk(model, x[:2], **kwargs)
    print(f"\n== traced kernel (output='trace', eval-mode BN, every parameter), n={n}")
    print(f"{'kernel':<28}{'wall s':>9}{'cpu s':>9}{'x tutorial':>11}{'peak MB':>9}{'fro err':>10}")
    rows = []
    with timed(args.device) as tut_m:
        tutorial = tutorial_kernel(model, x)
    for name, m, kernel in [("PyTorch tutorial recipe", tut_m, tutorial)] + [
        (f"lga_lightning {impl}", *_timed_kernel(model, x, impl, kwargs, args))
        for impl in ("auto", "batched")
    ]:
        err = errors(kernel, reference)[1]
        ratio = cost(m, args.device) / cost(tut_m, args.device)
        print(
            f"{name:<28}{m.seconds:>9.2f}{m.cpu_seconds:>9.2f}{ratio:>11.2f}"
            f"{m.peak_extra_mb:>9.0f}{err:>10.1e}",
            flush=True,
        )
        rows.append({"kernel": name, "n": n, "wall_s": m.seconds, "x_tutorial": ratio,
                     "fro_err": err})  # fmt: skip
    return rows


def _timed_kernel(
    model: nn.Module, x: torch.Tensor, implementation: str, kwargs: dict, args: argparse.Namespace
) -> tuple:
    with timed(args.device) as m:
        kernel = empirical_ntk(model, x, implementation=implementation, **kwargs)
    return m, kernel


def memory_table(args: argparse.Namespace) -> None:
    print(
        f"\n== memory of the decoupled (bn_mode='eval') per-sample path, NB201 C={args.C} "
        f"N={args.N}; J alone holds n x P floats"
    )
    print(f"{'n':>5}{'chunk':>7}{'seconds':>9}{'peak MB':>9}{'J MB':>7}")
    model = build(args)
    width = sum(
        p.numel()
        for name, p in model.named_parameters()
        if "weight" in name and "classifier" not in name
    )
    for n in args.memory_sizes:
        x = probe_images(n, args.data, device=args.device)
        for chunk in (args.memory_chunk, None):
            if chunk is None and n > args.unchunked_max:
                continue
            with measure() as m:
                empirical_ntk(model, x, bn_mode="eval", chunk_size=chunk)
            print(
                f"{n:>5}{chunk or '-':>7}{m.seconds:>9.2f}{m.peak_extra_mb:>9.0f}"
                f"{n * width * 4 / 2**20:>7.0f}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[64, 256])
    parser.add_argument("--tutorial", type=int, default=0, help="n of the tutorial peer table")
    parser.add_argument("--modes", nargs="+", default=["train", "eval"], choices=["train", "eval"])
    parser.add_argument(
        "--implementations",
        nargs="+",
        default=["auto"],
        choices=list(CHOICES),
        help="empirical_ntk implementations to time (per_sample only makes sense in eval mode)",
    )
    parser.add_argument("--C", type=int, default=16)
    parser.add_argument("--N", type=int, default=5)
    parser.add_argument("--data", default=None, help="CIFAR-10 subset .npz (found when omitted)")
    parser.add_argument("--chunk-size", type=int, default=32)
    parser.add_argument("--memory-sizes", type=int, nargs="*", default=[64, 256, 512])
    parser.add_argument("--memory-chunk", type=int, default=32)
    parser.add_argument("--unchunked-max", type=int, default=256)
    parser.add_argument("--floor-max", type=int, default=64, help="largest n for the floor")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--json", default=None, help="also write the speed rows to this file")
    parser.add_argument(
        "--channels-last-official",
        action="store_true",
        help="also time the official loop on a channels-last probe (train mode): its error is "
        "that of float32 BatchNorm on channels-last tensors",
    )
    args = parser.parse_args()
    args.data = cifar_path(args.data)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda":
        # the error column is that of true float32 arithmetic, as on a CPU
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    rows = speed_table(args) if args.sizes else []
    if args.tutorial:
        rows += tutorial_table(args)
    if args.json:
        info = {"device": args.device, "C": args.C, "N": args.N, "threads": torch.get_num_threads()}
        if args.device == "cuda":
            info["gpu"] = torch.cuda.get_device_name()
        rows = [{k: None if v != v else v for k, v in row.items()} for row in rows]  # nan: null
        with open(args.json, "w") as f:
            json.dump({**info, "rows": rows}, f, indent=1, allow_nan=False)
    if args.memory_sizes:
        memory_table(args)


if __name__ == "__main__":
    main()
