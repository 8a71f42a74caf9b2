#!/usr/bin/python3
"""PyTorch peer of convgen_bench: the same workloads, timed the same way.

Run with Debian's /usr/bin/python3 (the one that has torch):
    /usr/bin/python3 bench/pytorch_peer.py --list
    /usr/bin/python3 bench/pytorch_peer.py --workload lenet5_train_b64 --warmup-seconds 2 --seconds 10

Prints one JSON line: {"workload", "metric", "unit", "value" (median of samples), "samples", ...}.
A workload is a row of WORKLOADS; a model is a builder in MODELS. The models of examples/zoo come
from tests/parity/torch_zoo.py (torchvision's models under the zoo's names), each with the rows
<model>_infer_b1 and <model>_infer_b64, the peers of convgen_zoo_bench's workloads, and for the
models both sides train in the benchmark, <model>_train_b<N>.

    /usr/bin/python3 bench/pytorch_peer.py --matmul 2048
times a 2048x2048 fp32 matrix product (oneDNN or OpenBLAS, whichever torch calls) and prints
{"limit": "matmul", "gflops", ...}: one of the machine's fp32 limits bench/run reports.

    python3 bench/pytorch_peer.py --device cuda --workload resnet20_train_b128
runs the workload on the GPU instead (eager PyTorch with cuDNN, fp32 without TF32, timed with CUDA
events; the frozen TorchScript variants and the CPU thread settings are CPU-only); the JSON line
gains "device": "cuda" and "gpu", the GPU's name. Exit status 2 where torch sees no CUDA device.
"""

import argparse
import functools
import json
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# Debian's torch calls the system OpenBLAS (pthread build), which starts a thread per core on
# top of torch's OpenMP threads; the two then fight over the cores (LeNet-5 training at batch
# 64 on 2 cores: about 3,000 images/s instead of 5,300). Torch's threads are the ones we set,
# so OpenBLAS gets one unless the caller says otherwise. Must precede loading torch.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "parity"))
try:
    import torch_zoo  # noqa: E402
    ZOO_MISSING = ""
except ImportError as error:  # torchvision absent: the other workloads still run
    torch_zoo, ZOO_MISSING = None, f"the zoo workloads need tests/parity/torch_zoo.py, which failed: {error}"


def lenet5() -> nn.Module:
    # Same layers, shapes and order as examples/mnist_lenet/model.cpp.
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, 10),
    )


def conv3x3_layer() -> nn.Module:
    # Same as bench/models/conv3x3_layer.cpp: 37.7 MFLOP per image in the conv.
    return nn.Sequential(
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 16 * 16, 10),
    )


@dataclass(frozen=True)
class ModelSpec:
    build: object           # () -> nn.Module producing logits
    input_shape: tuple      # (C, H, W) of one image
    # What the training workloads need; inference-only models leave them out.
    classes: int = 0
    learning_rate: float = 0.0
    momentum: float = 0.0
    weight_decay: float = 0.0


MODELS = {
    "lenet5": ModelSpec(lenet5, (1, 28, 28), 10, learning_rate=0.01, momentum=0.9, weight_decay=5e-4),
    "conv3x3_layer": ModelSpec(conv3x3_layer, (32, 32, 32), 10, learning_rate=0.01, momentum=0.9,
                               weight_decay=5e-4),
}
# The zoo models the benchmark also trains, with the batch it trains them at (issue 6's list).
ZOO_TRAINING = {"mnist_cnn": 64, "resnet20": 128, "googlenet": 16, "densenet121": 16, "efficientnet_b0": 16,
                "densenet_bc100_cifar": 64}
ZOO_MODELS = ({name: (lambda name=name: torch_zoo.build(name)[0], input_shape)
               for name, (_, input_shape) in torch_zoo.MODELS.items()} if torch_zoo else {})
MODELS.update({name: ModelSpec(build, input_shape, *((10, 0.01, 0.9, 5e-4) if name in ZOO_TRAINING else ()))
               for name, (build, input_shape) in ZOO_MODELS.items()})


@dataclass(frozen=True)
class Workload:
    model: str
    kind: str               # "train" or "infer"
    batch: int
    metric: str             # train_throughput, infer_throughput or latency
    unit: str               # images/s or ms
    variant: str = "eager"  # "eager", or "frozen": torch.jit.freeze(torch.jit.script(model))
    grad_mode: str = "no_grad"  # autograd guard around inference: no_grad or inference_mode
    peer_of: str = ""       # the convgen workload this one is compared with, when named differently


WORKLOADS = {
    "lenet5_train_b64": Workload("lenet5", "train", 64, "train_throughput", "images/s"),
    "lenet5_infer_b1": Workload("lenet5", "infer", 1, "latency", "ms"),
    "lenet5_infer_b256": Workload("lenet5", "infer", 256, "infer_throughput", "images/s"),
    "conv3x3_layer_infer_b64": Workload("conv3x3_layer", "infer", 64, "infer_throughput", "images/s"),
    # PyTorch's fastest batch-1 inference measured here: frozen TorchScript, inference_mode.
    "lenet5_infer_b1_frozen": Workload("lenet5", "infer", 1, "latency", "ms", variant="frozen",
                                       grad_mode="inference_mode", peer_of="lenet5_infer_b1"),
}


def zoo_workloads(models) -> dict:
    """Each zoo model's peers of convgen_zoo_bench's <model>_infer_b1 and <model>_infer_b64 (and
    b256 for mnist_cnn): eager under no_grad, and frozen TorchScript under inference_mode (which
    also folds batch norm into the convs); bench/run keeps the better of the two. The models of
    ZOO_TRAINING also get <model>_train_b<batch>."""
    rows = {}
    for model in models:
        if model in ZOO_TRAINING:
            batch = ZOO_TRAINING[model]
            rows[f"{model}_train_b{batch}"] = Workload(model, "train", batch, "train_throughput", "images/s")
        batches = (1, 64, 256) if model == "mnist_cnn" else (1, 64)
        for batch in batches:
            metric, unit = ("latency", "ms") if batch == 1 else ("infer_throughput", "images/s")
            name = f"{model}_infer_b{batch}"
            rows[name] = Workload(model, "infer", batch, metric, unit)
            rows[f"{name}_frozen"] = Workload(model, "infer", batch, metric, unit, variant="frozen",
                                              grad_mode="inference_mode", peer_of=name)
    return rows


WORKLOADS.update(zoo_workloads(ZOO_MODELS))


class Predictor(nn.Module):
    """Forward plus softmax: what convgen's predict() returns."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(x), dim=1)


def workloads_on(device: str) -> dict:
    """The workloads that run on `device`: on cuda, all but the frozen TorchScript variants."""
    return {name: w for name, w in WORKLOADS.items() if device == "cpu" or w.variant != "frozen"}


def make_step(name: str, grad_mode: str, device: str = "cpu"):
    """Returns the workload and a function that runs one iteration of it. On cuda the model, the
    images and the labels live on the GPU from here on: a step only launches kernels, reads
    nothing back to the host and returns what it computed (the probabilities, in inference)."""
    workload = WORKLOADS[name]
    grad_mode = grad_mode or workload.grad_mode
    spec = MODELS[workload.model]
    torch.manual_seed(0)
    net = spec.build()
    images = torch.randn(workload.batch, *spec.input_shape)
    if device != "cpu":
        net, images = net.to(device), images.to(device)

    if workload.kind == "train":
        labels = torch.randint(0, spec.classes, (workload.batch,))
        if device != "cpu":
            labels = labels.to(device)
        loss_fn = nn.CrossEntropyLoss()
        optimizer = torch.optim.SGD(net.parameters(), lr=spec.learning_rate,
                                    momentum=spec.momentum, weight_decay=spec.weight_decay)
        net.train()

        def train_step():
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(net(images), labels)
            loss.backward()
            optimizer.step()

        return workload, train_step

    predictor = Predictor(net).eval()
    if workload.variant == "frozen" and device != "cpu":
        raise ValueError(f"workload {name}: the frozen TorchScript variant runs on CPU only")
    if workload.variant == "frozen":
        try:
            scripted = torch.jit.script(predictor)
        except RuntimeError:
            # GoogLeNet's scripted forward returns its (logits, aux...) tuple type: trace instead.
            scripted = torch.jit.trace(predictor, images)
        predictor = torch.jit.freeze(scripted)
    elif workload.variant != "eager":
        raise ValueError(f"workload {name}: unknown variant '{workload.variant}'")
    guard = torch.inference_mode if grad_mode == "inference_mode" else torch.no_grad

    def infer_step():
        with guard():
            return predictor(images)

    return workload, infer_step


def multiply_adds_per_image(name: str) -> int:
    """Multiply-adds of one image through the workload's convs and dense layers (what a GFLOP/s
    figure counts; pointwise layers are left out). A training step counts three times the
    forward's: the forward, the input gradient and the weight gradient."""
    workload = WORKLOADS[name]
    return forward_multiply_adds(workload.model) * (3 if workload.kind == "train" else 1)


@functools.lru_cache(maxsize=None)
def forward_multiply_adds(model: str) -> int:
    spec = MODELS[model]
    net = spec.build().eval()
    total = 0

    def count(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            per_output = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            total += output.numel() * per_output
        elif isinstance(module, nn.Linear):
            total += output.numel() * module.in_features

    hooks = [m.register_forward_hook(count) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        net(torch.zeros(1, *spec.input_shape))
    for hook in hooks:
        hook.remove()
    return total


def synchronize(device: str):
    """Waits for the work queued on the GPU; nothing on CPU, where every call has finished."""
    if device != "cpu":
        torch.cuda.synchronize()


def matmul_gflops(size: int, seconds: float, device: str = "cpu") -> float:
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    torch.mm(a, b)  # warm-up
    synchronize(device)
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or runs < 3:
        torch.mm(a, b)
        runs += 1
    synchronize(device)  # the GPU may still be working through the products queued
    return 2.0 * size ** 3 * runs / (time.perf_counter() - start) / 1e9


def resident_mib(field: str) -> float:
    """The process's resident memory now (VmRSS:) or at its peak (VmHWM:), in MiB (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return -1.0


def measure(step, warmup_seconds: float, seconds: float, repeats: int, device: str = "cpu"):
    """Warms up, then times `repeats` runs of n iterations each, n chosen so a run takes
    about seconds/repeats. Returns (seconds per iteration of each run, n).

    On cuda, each warm-up iteration waits for the GPU (so the calibration clock reads finished
    work), and a run is timed by CUDA events recorded before its first iteration and after its
    last, its iterations queued back to back as a training loop queues them."""
    start = time.perf_counter()
    iterations = 0
    # Calibrate on the second half of the warm-up, once caches and allocators have settled.
    calibration_start, calibration_iterations = start, 0
    while True:
        step()
        synchronize(device)
        iterations += 1
        now = time.perf_counter()
        if now - start >= warmup_seconds / 2 and calibration_iterations == 0 and iterations > 1:
            calibration_start, calibration_iterations = now, iterations
        if now - start >= warmup_seconds and iterations >= 3:
            break
    timed_iterations = iterations - calibration_iterations
    per_iteration = (now - calibration_start) / max(timed_iterations, 1)
    n = max(1, math.ceil(seconds / repeats / max(per_iteration, 1e-9)))

    per_run = []
    for _ in range(repeats):
        if device != "cpu":
            began, ended = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            began.record()
            for _ in range(n):
                step()
            ended.record()
            ended.synchronize()
            per_run.append(began.elapsed_time(ended) / 1e3 / n)  # elapsed_time is in ms
            continue
        t0 = time.perf_counter()
        for _ in range(n):
            step()
        per_run.append((time.perf_counter() - t0) / n)
    return per_run, n


def setup_cuda():
    """PyTorch's fastest eager fp32 setting on an NVIDIA GPU: cuDNN picks each conv's fastest
    algorithm for the shapes it meets (benchmark mode; the warm-up pays for the search), and
    neither cuBLAS nor cuDNN rounds fp32 operands to TF32 (which convgen's fp32 does not do either;
    cuDNN would by default)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True


def cuda_fields() -> dict:
    return {"device": "cuda", "gpu": torch.cuda.get_device_name()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="print the workload names and exit")
    parser.add_argument("--describe", action="store_true",
                        help="print one JSON line per workload (metric, unit, peer_of) and exit")
    parser.add_argument("--workload", help="workload to time (see --list)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="where the workload runs (default cpu); cuda: eager PyTorch with cuDNN, fp32 "
                             "without TF32, timed with CUDA events, no frozen variants")
    parser.add_argument("--warmup-seconds", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=10.0, help="total timed seconds")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs; value is their median")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="torch intra-op threads (default: the cores this process may use; CPU only)")
    parser.add_argument("--grad-mode", choices=["no_grad", "inference_mode"],
                        help="autograd guard around inference (default: the workload's)")
    parser.add_argument("--no-mkldnn", action="store_true",
                        help="torch.backends.mkldnn.enabled = False (CPU only)")
    parser.add_argument("--peak-memory", action="store_true",
                        help="build the workload, run two iterations, print the process's peak resident memory "
                             "(on cuda: torch.cuda.max_memory_allocated())")
    parser.add_argument("--matmul", type=int, metavar="N",
                        help="time an NxN fp32 matrix product for --seconds and print its GFLOP/s")
    args = parser.parse_args()
    cuda = args.device == "cuda"
    workloads = workloads_on(args.device)

    if args.list:
        print("\n".join(workloads))
        return 0
    if args.describe:
        for name, w in workloads.items():
            print(json.dumps({"workload": name, "metric": w.metric, "unit": w.unit,
                              "peer_of": w.peer_of or name,
                              "multiply_adds_per_image": multiply_adds_per_image(name)}))
        return 0
    if cuda:
        if not torch.cuda.is_available():
            print(f"pytorch_peer.py: --device cuda, but torch {torch.__version__} ({sys.executable}) sees no "
                  f"CUDA device (torch.cuda.is_available() is False; torch built with CUDA "
                  f"{torch.version.cuda or 'none'}). Run it where there is an NVIDIA GPU, with a CUDA build "
                  f"of PyTorch, or without --device cuda.", file=sys.stderr)
            return 2
        setup_cuda()
    if args.matmul:
        if cuda:
            print(json.dumps({"limit": "matmul", "size": args.matmul, "threads": torch.get_num_threads(),
                              "openblas_threads": int(os.environ["OPENBLAS_NUM_THREADS"]),
                              "gflops": matmul_gflops(args.matmul, args.seconds, "cuda"), **cuda_fields()}))
            return 0
        torch.set_num_threads(args.threads)
        print(json.dumps({"limit": "matmul", "size": args.matmul, "threads": torch.get_num_threads(),
                          "openblas_threads": int(os.environ["OPENBLAS_NUM_THREADS"]),
                          "gflops": matmul_gflops(args.matmul, args.seconds)}))
        return 0
    if args.workload not in workloads:
        if cuda and args.workload in WORKLOADS:
            parser.error(f"--workload {args.workload}: the frozen TorchScript variants run on CPU only")
        parser.error(f"--workload: expected one of {', '.join(workloads)}, found '{args.workload}'"
                     + (f" ({ZOO_MISSING})" if ZOO_MISSING else ""))
    if args.repeats < 1 or args.seconds <= 0 or args.warmup_seconds < 0:
        parser.error("expected --repeats >= 1, --seconds > 0 and --warmup-seconds >= 0")

    if not cuda:
        torch.set_num_threads(args.threads)
        torch.set_num_interop_threads(1)
        torch.backends.mkldnn.enabled = not args.no_mkldnn

    workload, step = make_step(args.workload, args.grad_mode, args.device)
    if args.peak_memory and cuda:
        mib = 1024 * 1024
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated() / mib
        step()
        step()
        torch.cuda.synchronize()
        print(json.dumps({"workload": args.workload, "metric": "peak_memory", "unit": "MiB",
                          "value": round(torch.cuda.max_memory_allocated() / mib, 1),
                          "before_first_step": round(before, 1), "batch": workload.batch, **cuda_fields()}))
        return 0
    if args.peak_memory:
        before = resident_mib("VmRSS:")
        step()
        step()
        print(json.dumps({"workload": args.workload, "metric": "peak_memory", "unit": "MiB",
                          "value": round(resident_mib("VmHWM:"), 1), "before_first_step": round(before, 1),
                          "batch": workload.batch}))
        return 0
    per_run, n = measure(step, args.warmup_seconds, args.seconds, args.repeats, args.device)
    if workload.unit == "ms":
        samples = [t * 1e3 for t in per_run]
    else:
        samples = [workload.batch / t for t in per_run]
    print(json.dumps({
        "workload": args.workload,
        "metric": workload.metric,
        "unit": workload.unit,
        "value": statistics.median(samples),
        "samples": samples,
        "iterations_per_sample": n,
        "batch": workload.batch,
        "threads": torch.get_num_threads(),
        "openblas_threads": int(os.environ["OPENBLAS_NUM_THREADS"]),
        "mkldnn": torch.backends.mkldnn.enabled,
        "grad_mode": (args.grad_mode or workload.grad_mode) if workload.kind == "infer" else "train",
        **(cuda_fields() if cuda else {}),
    }))
    return 0

if __name__ == "__main__":
    sys.exit(main())
