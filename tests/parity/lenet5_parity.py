#!/usr/bin/env python3
"""LeNet-5 through the generated library against PyTorch (Debian python3-torch): the same weights
(carried by a safetensors file with PyTorch's parameter names, so this also proves a state dict
loads), the same batch, SGD with momentum and weight decay for several steps. Losses, updated
weights and the final predictions must agree to float precision.

    lenet5_parity.py SGD_STEPS_BINARY WORK_DIR     (exit 77 = skipped: no PyTorch)
"""
import json
from collections import OrderedDict
import struct
import subprocess
import sys
from pathlib import Path

try:
    import numpy as np
    import torch
    import torch.nn as nn
except ImportError as error:
    print(f"SKIP: PyTorch is not available ({error}); scripts/setup --tests installs python3-torch")
    sys.exit(77)

STEPS, BATCH, TOLERANCE = 5, 16, 1e-4


def lenet5():
    torch.manual_seed(0)
    layers = [("conv1", nn.Conv2d(1, 6, 5, padding=2)), ("relu1", nn.ReLU()), ("pool1", nn.MaxPool2d(2)),
              ("conv2", nn.Conv2d(6, 16, 5)), ("relu2", nn.ReLU()), ("pool2", nn.MaxPool2d(2)),
              ("flatten", nn.Flatten()), ("dense1", nn.Linear(400, 120)), ("relu3", nn.ReLU()),
              ("dense2", nn.Linear(120, 84)), ("relu4", nn.ReLU()), ("dense3", nn.Linear(84, 10))]
    return nn.Sequential(OrderedDict(layers))


def write_safetensors(path: Path, tensors: dict):
    header, blobs, offset = {}, [], 0
    for name, value in tensors.items():
        data = value.detach().numpy().astype(np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(value.shape), "data_offsets": [offset, offset + len(data)]}
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


def relative_error(ours, theirs) -> float:
    theirs = np.asarray(theirs, dtype=np.float64)
    return float(np.abs(np.asarray(ours, dtype=np.float64) - theirs).max() / max(np.abs(theirs).max(), 1e-12))


def main() -> int:
    binary, work = sys.argv[1], Path(sys.argv[2])
    work.mkdir(parents=True, exist_ok=True)
    model = lenet5()
    write_safetensors(work / "in.safetensors", model.state_dict())
    images = torch.randn(BATCH, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    labels = torch.randint(0, 10, (BATCH,), generator=torch.Generator().manual_seed(2))
    images.numpy().astype(np.float32).tofile(work / "images.bin")  # 1 channel: NCHW == NHWC
    labels.numpy().astype(np.int32).tofile(work / "labels.bin")

    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    torch_losses = []
    for _ in range(STEPS):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        torch_losses.append(loss.item())
    with torch.no_grad():
        torch_probabilities = torch.softmax(model(images), dim=1).numpy()

    run = subprocess.run([binary, str(work), str(STEPS), str(BATCH)], capture_output=True, text=True)
    if run.returncode != 0:
        print(f"FAIL: {binary} exited with {run.returncode}: {run.stderr}")
        return 1
    ours_losses = [float(line) for line in run.stdout.split()]
    ours = read_safetensors(work / "out.safetensors")
    probabilities = np.fromfile(work / "probabilities.bin", dtype=np.float32).reshape(BATCH, 10)

    failures = []
    for step, (a, b) in enumerate(zip(ours_losses, torch_losses)):
        error = abs(a - b) / abs(b)
        print(f"step {step + 1}: loss convgen {a:.7f}  PyTorch {b:.7f}  relative error {error:.1e}")
        if error > TOLERANCE:
            failures.append(f"loss of step {step + 1}")
    for name, value in model.state_dict().items():
        error = relative_error(ours[name], value)
        momentum = relative_error(ours[name + ".momentum_buffer"], optimizer.state[dict(model.named_parameters())[name]]["momentum_buffer"])
        print(f"{name:14s} weights {error:.1e}  momentum {momentum:.1e}")
        if error > TOLERANCE or momentum > TOLERANCE:
            failures.append(name)
    error = relative_error(probabilities, torch_probabilities)
    print(f"predictions    {error:.1e}")
    if error > TOLERANCE:
        failures.append("predictions")
    if failures:
        print("FAIL: differs from PyTorch beyond", TOLERANCE, "in", ", ".join(failures))
        return 1
    print(f"OK: {STEPS} SGD steps of LeNet-5 match PyTorch {torch.__version__} within {TOLERANCE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
