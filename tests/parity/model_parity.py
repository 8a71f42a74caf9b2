#!/usr/bin/env python3
"""A generated model against PyTorch (Debian python3-torch) from the same random weights and batch.

The weights travel through a safetensors file under PyTorch's own state-dict names (batch-norm
step counters included), so this also proves that a PyTorch state dict loads. Checked:
  - inference: the library's probabilities against the module's softmax in eval mode (batch norm
    on its running statistics, which convgen folds into the convs; dropout off);
  - training: SGD steps with momentum and weight decay in train mode (batch statistics, dropout
    off on both sides): the loss of every step, then every weight, momentum buffer and running
    statistic after them.

    model_parity.py MODEL_STEPS_BINARY MODEL WORK_DIR [--steps N] [--batch B]   (exit 77: no PyTorch)
"""
import argparse
from collections import OrderedDict
import copy
import json
from pathlib import Path
import struct
import subprocess
import sys

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torchvision
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import torch_zoo
except ImportError as error:
    print(f"SKIP: PyTorch is not available ({error}); scripts/setup --tests installs python3-torch")
    sys.exit(77)

# Inference must agree to 1e-4 (relative to the largest probability). After SGD steps, float
# rounding has gone through every layer's backward pass in a different order (and batch norm's
# backward subtracts nearly equal sums), so the updated tensors are held to 5e-4, and gradients
# (momentum buffers) are compared against the model's gradient scale: a conv bias before a batch
# norm has a true gradient of zero, of which both sides hold only rounding noise.
TOLERANCE = 1e-4
TRAINING_TOLERANCE = 5e-4
GRADIENT_TOLERANCE = 1e-3
LEARNING_RATE, MOMENTUM, WEIGHT_DECAY = 0.05, 0.9, 5e-4


def lenet5():
    layers = [("conv1", nn.Conv2d(1, 6, 5, padding=2)), ("relu1", nn.ReLU()), ("pool1", nn.MaxPool2d(2)),
              ("conv2", nn.Conv2d(6, 16, 5)), ("relu2", nn.ReLU()), ("pool2", nn.MaxPool2d(2)),
              ("flatten", nn.Flatten()), ("dense1", nn.Linear(400, 120)), ("relu3", nn.ReLU()),
              ("dense2", nn.Linear(120, 84)), ("relu4", nn.ReLU()), ("dense3", nn.Linear(84, 10))]
    return nn.Sequential(OrderedDict(layers)), (1, 28, 28)


class NormNet(nn.Module):
    """tests/models/layer_nets.cpp norm_net."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8), nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = nn.functional.relu6(self.bn1(self.conv1(x)))
        x = nn.functional.leaky_relu(self.bn2(self.conv2(x)), 0.1)
        return self.fc(x.mean((2, 3)))


class BranchNet(nn.Module):
    """tests/models/layer_nets.cpp branch_net (its softmax is the loss's)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 6, 3, padding=2, dilation=2)
        self.branch_a, self.branch_b = nn.Conv2d(6, 4, 1), nn.Conv2d(6, 4, 3, padding=1)
        self.grouped = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.shortcut = nn.Conv2d(6, 8, 1)
        self.fc = nn.Linear(8 * 4 * 4, 5)

    def forward(self, x):
        trunk = torch.tanh(self.conv1(x))
        joined = self.grouped(torch.cat([self.branch_a(trunk), torch.sigmoid(self.branch_b(trunk))], 1))
        y = nn.functional.avg_pool2d(torch.relu(joined + self.shortcut(trunk)), 3, stride=2)
        return self.fc(y.flatten(1))


class DropoutNet(nn.Module):
    """tests/models/layer_nets.cpp dropout_net."""

    def __init__(self):
        super().__init__()
        self.fc1, self.bn, self.drop, self.fc2 = nn.Linear(6, 16), nn.BatchNorm1d(16), nn.Dropout(0.5), nn.Linear(16, 3)

    def forward(self, x):
        return self.fc2(self.drop(torch.relu(self.bn(self.fc1(x)))))


class DropPath(nn.Module):
    """Stochastic depth in torchvision's "row" mode (torchvision.ops.StochasticDepth)."""

    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        keep = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class GateNet(nn.Module):
    """tests/models/layer_nets.cpp gate_net."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.dw5 = nn.Conv2d(8, 8, 5, padding=2, groups=8)
        self.se = nn.Module()
        self.se.fc1, self.se.fc2 = nn.Conv2d(8, 4, 1), nn.Conv2d(4, 8, 1)
        self.drop_path = DropPath(0.2)
        self.dw7 = nn.Conv2d(8, 8, 7, padding=3, groups=8)
        self.fc = nn.Linear(8 * 4 * 4, 5)

    def forward(self, x):
        x = nn.functional.max_pool2d(nn.functional.silu(self.bn1(self.conv1(x))), 3, 2, ceil_mode=True)
        y = nn.functional.hardswish(self.dw5(x))
        gate = torch.sigmoid(self.se.fc2(nn.functional.silu(self.se.fc1(y.mean((2, 3), keepdim=True)))))
        x = self.dw7(x + self.drop_path(y * gate))
        x = nn.functional.avg_pool2d(x, 3, 2, padding=1, ceil_mode=True, count_include_pad=False)
        return self.fc(x.flatten(1))


TEST_MODELS = {"lenet5": lenet5, "norm_net": lambda: (NormNet(), (3, 8, 8)),
               "branch_net": lambda: (BranchNet(), (2, 9, 9)), "dropout_net": lambda: (DropoutNet(), (6,)),
               "gate_net": lambda: (GateNet(), (3, 12, 12))}


def build(name):
    torch.manual_seed(0)
    module, input_shape = TEST_MODELS[name]() if name in TEST_MODELS else torch_zoo.build(name)
    # Batch norm away from its identity start, so that folding and the statistics are exercised.
    generator = torch.Generator().manual_seed(3)
    for layer in module.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                shape = layer.weight.shape
                layer.weight.copy_(torch.rand(shape, generator=generator) + 0.5)
                layer.bias.copy_(torch.rand(shape, generator=generator) * 0.4 - 0.2)
                layer.running_mean.copy_(torch.rand(shape, generator=generator) * 0.4 - 0.2)
                layer.running_var.copy_(torch.rand(shape, generator=generator) + 0.5)
    return module, input_shape


def write_safetensors(path: Path, tensors: dict):
    dtypes = {torch.float32: ("F32", np.float32), torch.int64: ("I64", np.int64)}
    header, blobs, offset = {}, [], 0
    for name, value in tensors.items():
        dtype, numpy_type = dtypes[value.dtype]
        data = value.detach().numpy().astype(numpy_type).tobytes()
        header[name] = {"dtype": dtype, "shape": list(value.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def read_safetensors(path: Path) -> dict:
    data = path.read_bytes()
    size = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + size])
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        tensors[name] = np.frombuffer(data[8 + size + begin:8 + size + end], dtype=np.float32).reshape(entry["shape"])
    return tensors


def relative_error(ours, theirs, floor=0.0) -> float:
    """The largest difference relative to the largest reference value (or `floor`, if larger)."""
    theirs = np.asarray(theirs, dtype=np.float64)
    return float(np.abs(np.asarray(ours, dtype=np.float64) - theirs).max() / max(np.abs(theirs).max(), floor, 1e-12))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("model")
    parser.add_argument("work", type=Path)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--batch", type=int, default=8)
    # In a deep ReLU net, float32 rounding moves a few pre-activations within rounding of 0 to the
    # other side of the kink, each changing one channel's gradient by one element's share. PyTorch's
    # own float32 gradients then differ from its float64 ones by more than GRADIENT_TOLERANCE
    # (DenseNet-BC-100: 3e-2). With --judge-float64 (one step only) the gradients are compared with
    # PyTorch's in float64 instead, and so are the weights after the step; convgen's worst error of
    # each kind must be within its tolerance or 1.5 times PyTorch float32's (two float32 results
    # land on either side of the same kinks).
    parser.add_argument("--judge-float64", action="store_true")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)

    module, input_shape = build(args.model)
    write_safetensors(args.work / "in.safetensors", module.state_dict())
    images = torch.randn(args.batch, *input_shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        classes = module.eval()(images[:1]).shape[1]
    labels = torch.randint(0, classes, (args.batch,), generator=torch.Generator().manual_seed(2))
    nhwc = images.permute(0, 2, 3, 1) if images.dim() == 4 else images
    nhwc.contiguous().numpy().astype(np.float32).tofile(args.work / "images.bin")
    labels.numpy().astype(np.int32).tofile(args.work / "labels.bin")

    with torch.no_grad():
        torch_probabilities = torch.softmax(module.eval()(images), dim=1).numpy()
    def training_mode(m):
        m.train()
        for layer in m.modules():
            if isinstance(layer, (nn.Dropout, DropPath, torchvision.ops.StochasticDepth)):
                layer.eval()  # dropout and drop-path off, as the library's set_dropout(false)
        return m

    float64 = None  # with --judge-float64: kind -> parameter -> the float64 result
    if args.judge_float64:
        if args.steps != 1:
            parser.error("--judge-float64 compares the gradients of one step: --steps 1")
        exact = training_mode(copy.deepcopy(module).double())
        nn.functional.cross_entropy(exact(images.double()), labels).backward()
        # After one step the momentum buffer is the gradient plus weight decay, and w' = w - lr * buffer.
        float64 = {"momentum": {}, "weights": {}}
        for name, p in exact.named_parameters():
            buffer = p.grad + WEIGHT_DECAY * p.detach()
            float64["momentum"][name] = buffer.numpy()
            float64["weights"][name] = (p.detach() - LEARNING_RATE * buffer).numpy()
    training_mode(module)
    optimizer = torch.optim.SGD(module.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    torch_losses = []
    for _ in range(args.steps):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(module(images), labels)
        loss.backward()
        optimizer.step()
        torch_losses.append(loss.item())

    run = subprocess.run([args.binary, str(args.work), str(args.steps), str(args.batch), str(LEARNING_RATE),
                          str(MOMENTUM), str(WEIGHT_DECAY)], capture_output=True, text=True)
    if run.returncode == 77:
        print(f"SKIP: {args.binary}: {run.stderr.strip()}")
        return 77
    if run.returncode != 0:
        print(f"FAIL: {args.binary} exited with {run.returncode}: {run.stderr}")
        return 1
    ours_losses = [float(line) for line in run.stdout.split()]
    ours = read_safetensors(args.work / "out.safetensors")
    probabilities = np.fromfile(args.work / "probabilities.bin", dtype=np.float32).reshape(args.batch, classes)

    failures = []
    error = relative_error(probabilities, torch_probabilities)
    print(f"{args.model}: inference probabilities relative error {error:.1e}")
    if error > TOLERANCE:
        failures.append("inference probabilities")
    for step, (a, b) in enumerate(zip(ours_losses, torch_losses)):
        error = abs(a - b) / abs(b)
        print(f"step {step + 1}: loss convgen {a:.7f}  PyTorch {b:.7f}  relative error {error:.1e}")
        if error > TOLERANCE:
            failures.append(f"loss of step {step + 1}")
    parameters = dict(module.named_parameters())
    gradient_scale = max(float(optimizer.state[p]["momentum_buffer"].abs().max()) for p in parameters.values())
    pytorch_float32 = {"weights": lambda name: parameters[name].detach(),
                       "momentum": lambda name: optimizer.state[parameters[name]]["momentum_buffer"]}
    floors = {"weights": 0.0, "momentum": 1e-3 * gradient_scale, "running statistics": 0.0}
    tolerances = {"weights": TRAINING_TOLERANCE, "momentum": GRADIENT_TOLERANCE, "running statistics": TRAINING_TOLERANCE}
    if float64 is not None:
        for kind, exact in float64.items():
            off = max(relative_error(pytorch_float32[kind](name), exact[name], floors[kind]) for name in parameters)
            tolerances[kind] = max(tolerances[kind], 1.5 * off)
            print(f"{kind} judged against PyTorch in float64, from which its float32 {kind} are off by up to {off:.1e}")
    worst = {"weights": (0.0, ""), "momentum": (0.0, ""), "running statistics": (0.0, "")}
    for name, value in module.state_dict().items():
        if name.endswith("num_batches_tracked"):
            continue
        if name not in parameters:
            checks = [("running statistics", ours[name], value)]
        else:
            checks = [("weights", ours[name], value),
                      ("momentum", ours[name + ".momentum_buffer"], pytorch_float32["momentum"](name))]
            if float64 is not None:
                checks = [(kind, a, float64[kind][name]) for kind, a, _ in checks]
        for kind, a, b in checks:
            error = relative_error(a, b, floors[kind])
            if error > worst[kind][0]:
                worst[kind] = (error, name)
            if error > tolerances[kind]:
                failures.append(f"{kind} of {name} ({error:.1e})")
    for kind, (error, name) in worst.items():
        if name:
            print(f"after {args.steps} step(s): largest {kind} relative error {error:.1e} ({name})")
    if failures:
        print(f"FAIL: {args.model} differs from PyTorch in", ", ".join(failures[:10]))
        return 1
    print(f"OK: {args.model} inference (within {TOLERANCE}) and {args.steps} SGD step(s) (weights within "
          f"{tolerances['weights']:.1e}, gradients within {tolerances['momentum']:.1e}) match PyTorch "
          f"{torch.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
