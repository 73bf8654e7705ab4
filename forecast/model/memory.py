"""Whether training a model fits in this machine's memory, checked before anything runs.

    check_training_fits(config)   # ConfigError naming the layer, the figure and a way out

The estimate needs no TensorFlow: the parameter count and the values kept per sample come
from `forecast.model.build.check_stack`. Training holds, in float32, the weights, their gradients
and the optimizer's slots (Adam: two per weight), and for every sample of a batch the
activations the backward pass needs. It is rough (within a factor of two or so); it exists
to refuse a model a thousand times too big with a message instead of an out-of-memory crash.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from forecast.config.schema import Config
from forecast.errors import ConfigError
from forecast.model.build import check_stack

if TYPE_CHECKING:  # build is imported only when the shape is not given
    from forecast.model.build import StackShape

FLOAT = 4  # bytes of a float32
SLOTS = {"adam": 2, "adamw": 2, "rmsprop": 1, "sgd": 0}  # optimizer values per weight


def available_bytes() -> int | None:
    """Memory available to a new allocation (Linux's MemAvailable, else free pages), or
    None where it cannot be read (then nothing is refused)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def training_bytes(
    config: Config, shape: StackShape, windows: int | None = None
) -> tuple[int, int]:
    """(bytes of weights, gradients and optimizer slots; bytes of a batch's activations).
    `windows`: the training windows, which a batch cannot outnumber."""
    training = config.training
    weights = shape.params * FLOAT * (2 + SLOTS[training.optimizer])
    batch = training.batch_size if windows is None else min(training.batch_size, windows)
    return weights, batch * shape.activations * FLOAT


def check_training_fits(
    config: Config, shape: StackShape | None = None, windows: int | None = None
) -> None:
    """ConfigError when training `config` needs more memory than this machine has available.
    `shape`: the model's `check_stack` result, if already computed; `windows`: the number
    of training windows, or an upper bound."""
    if shape is None:
        window, data = config.window, config.data
        shape = check_stack(
            config.model, window.input_steps, len(data.inputs), window.output_steps,
            len(data.targets),
        )  # fmt: skip
    weights, activations = training_bytes(config, shape, windows)
    have = available_bytes()
    if have is None or weights + activations <= have:
        return
    need = f"about {_size(weights + activations)} for training, this machine has {_size(have)}"
    if activations > weights:
        raise ConfigError(
            f"training.batch_size: {config.training.batch_size} windows of "
            f"{config.window.input_steps} steps need {need} available; use a smaller "
            "training.batch_size or window.input_steps"
        )
    field, width, noun = _largest_layer(config, shape.largest)
    fewer = " or a smaller model.ensemble" if config.model.ensemble > 1 else ""
    if field is None:
        raise ConfigError(f"model: the network needs {need} available; use a smaller model{fewer}")
    raise ConfigError(f"{field}: {width} {noun} need {need} available; use fewer {noun}{fewer}")


def _largest_layer(config: Config, index: int | None) -> tuple[str | None, int, str]:
    """(field path, width, 'units' or 'filters') of the layer `index` of the stack, as the
    config wrote it (explicit layers or the shorthand)."""
    model = config.model
    if index is None:  # the output head: the layers before it set its size
        return None, 0, ""
    specs = model.stack
    spec = specs[index]
    noun = "filters" if spec.type == "conv1d" else "units"
    width = getattr(spec, noun)
    if model.layers is not None:
        return f"model.layers[{index}].{noun}", width, noun
    if noun == "filters":
        return "model.filters", width, noun
    position = sum(1 for s in specs[:index] if hasattr(s, "units"))
    return f"model.units[{position}]", width, noun


def _size(count: int) -> str:
    """Bytes as people say them: '960 GB', '2.5 GB', '300 MB'."""
    for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6)):
        if count >= scale:
            value = count / scale
            shown = f"{value:.0f}" if value >= 10 else f"{value:.1f}".removesuffix(".0")
            return f"{shown} {unit}"
    return f"{count} bytes"
