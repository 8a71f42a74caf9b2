#!/usr/bin/env python3
"""Every zoo model's parameter names and shapes, as the generator lists them, against its PyTorch
twin's state dict (tests/parity/torch_zoo.py), so checkpoints move between the two unchanged.
PyTorch's num_batches_tracked counters have no counterpart and are ignored.

    zoo_names.py GENERATOR [MODEL...]     (exit 1 = a mismatch, 77 = skipped: no PyTorch)
"""
import subprocess
import sys
from pathlib import Path

try:
    import torch  # noqa: F401
    import torchvision  # noqa: F401
except ImportError as error:
    print(f"SKIP: PyTorch or torchvision is not available ({error}); "
          "scripts/setup --tests installs python3-torch and python3-torchvision")
    sys.exit(77)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch_zoo  # noqa: E402


def generator_parameters(generator, name):
    """name -> (shape, "trainable" | "state"), in the generator's order."""
    listing = subprocess.run([generator, "--parameters", "--model", name], capture_output=True, text=True)
    if listing.returncode != 0:
        raise RuntimeError(f"{generator} --parameters --model {name} failed: {listing.stderr.strip()}")
    parameters = {}
    for line in listing.stdout.splitlines():
        parameter, rest = line.split(" ", 1)
        shape, kind = rest.rsplit(" ", 1)
        dims = shape.strip("[]")
        parameters[parameter] = (tuple(int(d) for d in dims.split(",")) if dims else (), kind)
    return parameters


def torch_parameters(name):
    """name -> (shape, "trainable" | "state") of the twin's state dict."""
    module, _ = torch_zoo.build(name)
    trainable = {parameter for parameter, _ in module.named_parameters()}
    return {parameter: (tuple(value.shape), "trainable" if parameter in trainable else "state")
            for parameter, value in module.state_dict().items() if not parameter.endswith("num_batches_tracked")}


def differences(convgen, pytorch):
    problems = [f"only in convgen: {p} {list(convgen[p][0])}" for p in convgen if p not in pytorch]
    problems += [f"only in PyTorch: {p} {list(pytorch[p][0])}" for p in pytorch if p not in convgen]
    for p in convgen.keys() & pytorch.keys():
        if convgen[p] != pytorch[p]:
            problems.append(f"{p}: convgen {list(convgen[p][0])} {convgen[p][1]}, "
                            f"PyTorch {list(pytorch[p][0])} {pytorch[p][1]}")
    return problems


def elements(shape):
    count = 1
    for d in shape:
        count *= d
    return count


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    generator, names = sys.argv[1], sys.argv[2:] or list(torch_zoo.MODELS)
    failed = 0
    for name in names:
        try:
            convgen = generator_parameters(generator, name)
            problems = differences(convgen, torch_parameters(name))
        except (RuntimeError, KeyError) as error:
            problems = [str(error.args[0])]
            convgen = {}
        if not problems and not convgen:
            problems = ["the generator listed no parameters"]
        if problems:
            failed += 1
            print(f"{name}: MISMATCH")
            for problem in problems:
                print(f"    {problem}")
        else:
            trainable = sum(elements(shape) for shape, kind in convgen.values() if kind == "trainable")
            print(f"{name}: {len(convgen)} tensors match, {trainable:,} trainable parameters")
    print(f"{len(names) - failed} of {len(names)} zoo models match their PyTorch twins")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
