#!/usr/bin/env python3
"""The training recipes of examples/fashion and examples/cifar in PyTorch, on the same files: the
reference accuracy and time for bench/RESULTS.md. Same model, data split, normalisation,
augmentation (random crop with zero padding, horizontal flip), batch, SGD with momentum and
weight decay, and learning-rate schedule (linear warm-up, then a cosine to 0, per step).
Run with /usr/bin/python3 (Debian's torch and torchvision).

    /usr/bin/python3 bench/pytorch_reference.py fashion --data data/fashion-mnist [--epochs 15]
    /usr/bin/python3 bench/pytorch_reference.py cifar10 --data data/cifar10-jpg [--epochs 60]
        [--checkpoint runs/torch-cifar10.pt]   (saved after every epoch; a run resumes from it)
        [--device cuda]   (the same recipe on a GPU; a checkpoint moves between devices)
"""
import argparse
import math
import struct
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "parity"))
import torch_zoo  # noqa: E402

# The normalisation the convgen models declare (examples/*/..._statistics.h).
STATISTICS = {"fashion": ([0.2860], [0.3530]), "cifar10": ([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616])}
PADDING = {"fashion": 2, "cifar10": 4}


def read_idx(path: Path) -> np.ndarray:
    data = path.read_bytes()
    magic, = struct.unpack(">I", data[:4])
    dims = magic & 0xFF
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return np.frombuffer(data[4 + 4 * dims:], dtype=np.uint8).reshape(shape)


def load_fashion(root: Path):
    def split(images, labels):
        x = torch.from_numpy(read_idx(root / images).copy()).unsqueeze(1)  # N, 1, 28, 28 uint8
        return x, torch.from_numpy(read_idx(root / labels).astype(np.int64))
    return (split("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
            split("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"))


def load_image_folder(root: Path):
    from PIL import Image
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    images, labels = [], []
    for label, name in enumerate(classes):
        for file in sorted((root / name).iterdir()):
            with Image.open(file) as image:
                images.append(np.asarray(image.convert("RGB"), dtype=np.uint8))
            labels.append(label)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()  # N, 3, H, W uint8
    return x, torch.tensor(labels, dtype=torch.int64)


def fashion_cnn() -> nn.Module:
    def conv_bn_relu(inputs, outputs):
        return [nn.Conv2d(inputs, outputs, 3, padding=1, bias=False), nn.BatchNorm2d(outputs), nn.ReLU()]
    return nn.Sequential(
        *conv_bn_relu(1, 32), *conv_bn_relu(32, 32), nn.MaxPool2d(2),
        *conv_bn_relu(32, 64), *conv_bn_relu(64, 64), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(64 * 7 * 7, 256, bias=False), nn.BatchNorm1d(256), nn.ReLU(), nn.Dropout(0.3), nn.Linear(256, 10))


def augment(pixels: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Random crop after zero padding (black, in pixel units) and a random horizontal flip, per image."""
    n, _, h, w = pixels.shape
    padded = nn.functional.pad(pixels, (padding, padding, padding, padding))
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None, :])  # n, h
    cols = (dx[:, None] + torch.arange(w)[None, :])  # n, w
    batch = torch.arange(n)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    flip = torch.rand(n, generator=generator) < 0.5
    out[flip] = out[flip].flip(3)
    return out


def learning_rate(step: int, total: int, warmup: int, peak: float) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("task", choices=["fashion", "cifar10"])
    parser.add_argument("--data", required=True)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--warmup-epochs", type=int, default=1)
    parser.add_argument("--no-augmentation", action="store_true")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu, or cuda for an NVIDIA GPU")
    parser.add_argument("--checkpoint", type=Path,
                        help="written (atomically) after every epoch; if it exists, training resumes from it")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    root = Path(args.data)
    started = time.perf_counter()
    if args.task == "fashion":
        (train_x, train_y), (test_x, test_y) = load_fashion(root)
        model = fashion_cnn()
    else:
        train_x, train_y = load_image_folder(root / "train")
        test_x, test_y = load_image_folder(root / "test")
        model = torch_zoo.build("resnet20")[0]
    print(f"{args.task}: {len(train_x)} training and {len(test_x)} test images, loaded in "
          f"{time.perf_counter() - started:.1f} s", flush=True)
    device = torch.device(args.device)
    model = model.to(device)
    mean, std = (torch.tensor(v, device=device).view(1, -1, 1, 1) for v in STATISTICS[args.task])

    def network_input(pixels):
        return (pixels.to(device).float() / 255 - mean) / std

    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                                weight_decay=args.weight_decay)
    generator = torch.Generator().manual_seed(args.seed)
    steps_per_epoch = len(train_x) // args.batch
    total_steps, warmup = steps_per_epoch * args.epochs, steps_per_epoch * args.warmup_epochs
    step, first_epoch, elapsed = 0, 0, 0.0
    # What a run's result depends on: not where it ran.
    recipe = vars(args) | {"checkpoint": None, "device": None, "threads": None}
    if args.checkpoint and args.checkpoint.exists():
        state = torch.load(args.checkpoint, map_location=device)
        if {**state["arguments"], "device": None, "threads": None} != recipe:
            sys.exit(f"{args.checkpoint} was written by a run with other arguments: {state['arguments']}")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        step, first_epoch, elapsed = state["step"], state["epoch"], state["elapsed"]
        print(f"resuming from {args.checkpoint}: {first_epoch} of {args.epochs} epochs done", flush=True)
    started = time.perf_counter() - elapsed
    for epoch in range(first_epoch, args.epochs):
        model.train()
        order = torch.randperm(len(train_x), generator=generator)
        total_loss, correct = 0.0, 0
        for first in range(0, steps_per_epoch * args.batch, args.batch):
            index = order[first:first + args.batch]
            pixels = train_x[index]
            if not args.no_augmentation:
                pixels = augment(pixels, PADDING[args.task], generator)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, total_steps, warmup, args.lr)
            optimizer.zero_grad()
            logits = model(network_input(pixels))
            labels = train_y[index].to(device)
            loss = loss_fn(logits, labels)
            loss.backward()
            optimizer.step()
            total_loss += loss.item()
            correct += (logits.argmax(1) == labels).sum().item()
            step += 1
        model.eval()
        with torch.no_grad():
            test_correct = sum((model(network_input(test_x[i:i + 1000])).argmax(1).cpu() == test_y[i:i + 1000])
                               .sum().item() for i in range(0, len(test_x), 1000))
        print(f"epoch {epoch + 1}: loss {total_loss / steps_per_epoch:.4f}  "
              f"train accuracy {100 * correct / (steps_per_epoch * args.batch):.2f}%  "
              f"test accuracy {100 * test_correct / len(test_x):.2f}%  {time.perf_counter() - started:.1f} s",
              flush=True)
        if args.checkpoint:
            # The training time so far counts only epochs, not the time between runs.
            state = {"arguments": recipe, "model": model.state_dict(),
                     "optimizer": optimizer.state_dict(), "generator": generator.get_state(),
                     "torch_rng": torch.get_rng_state(), "step": step, "epoch": epoch + 1,
                     "elapsed": time.perf_counter() - started}
            partial = args.checkpoint.with_name(args.checkpoint.name + ".partial")
            torch.save(state, partial)
            partial.replace(args.checkpoint)


if __name__ == "__main__":
    main()
