#!/usr/bin/env python3
"""The LeNet-5 MNIST recipe of examples/mnist_lenet/train_mnist.cpp, in PyTorch, on the same IDX
files: the reference accuracy (and time) for the demo. Run with /usr/bin/python3 (Debian's torch).

    /usr/bin/python3 bench/pytorch_mnist_reference.py --data data/mnist [--epochs 5] [--lr 0.02]
"""
import argparse
import math
import struct
import time
from pathlib import Path

import torch
import torch.nn as nn


def read_idx(path: Path) -> torch.Tensor:
    data = path.read_bytes()
    magic, = struct.unpack(">I", data[:4])
    dims = magic & 0xFF
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return torch.frombuffer(bytearray(data[4 + 4 * dims:]), dtype=torch.uint8).reshape(shape)


def lenet5() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="data/mnist")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.03)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    d = Path(args.data)
    def load(images, labels):
        x = read_idx(d / images).float().div(255).sub(0.1307).div(0.3081).unsqueeze(1)
        return x, read_idx(d / labels).long()
    train_x, train_y = load("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
    test_x, test_y = load("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    model = lenet5()
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
    started = time.perf_counter()
    for epoch in range(args.epochs):
        for group in optimizer.param_groups:
            group["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * epoch / args.epochs))
        model.train()
        order = torch.randperm(len(train_x))
        total, steps = 0.0, 0
        for first in range(0, len(order) - args.batch + 1, args.batch):
            index = order[first:first + args.batch]
            optimizer.zero_grad()
            loss = loss_fn(model(train_x[index]), train_y[index])
            loss.backward()
            optimizer.step()
            total += loss.item()
            steps += 1
        model.eval()
        with torch.no_grad():
            correct = (model(test_x).argmax(1) == test_y).sum().item()
        print(f"epoch {epoch + 1}: loss {total / steps:.4f}  test accuracy {100 * correct / len(test_x):.2f}%  "
              f"{time.perf_counter() - started:.1f} s", flush=True)


if __name__ == "__main__":
    main()
