"""What a fit says before it starts: the layout, and the cuDNN warnings once per process."""

from __future__ import annotations

import logging

from forecast.config.schema import Config
from forecast.interrupts import tensorflow_work
from forecast.model.build import cudnn_warnings, gpu_visible

log = logging.getLogger("forecast")


_SAID: set[str] = set()  # cuDNN warnings given in this process


def log_layout(cfg: Config) -> None:
    unsaid = [w for w in cudnn_warnings(cfg.model) if w not in _SAID]
    if unsaid:  # only then TensorFlow is asked about GPUs (and imported, if not yet)
        with tensorflow_work():
            gpu = gpu_visible()
        for warning in unsaid if gpu else []:
            log.warning(warning)
            _SAID.add(warning)
    data, window = cfg.data, cfg.window
    calendar = data.calendar if isinstance(data.calendar, str) else ", ".join(data.calendar)
    log.info(
        "layout %s: %s%s -> %s, input_steps %d, horizon %d (%s)",
        cfg.layout,
        ", ".join(data.features),
        f" + calendar {calendar}" if calendar else "",
        ", ".join(data.targets),
        window.input_steps,
        window.horizon,
        window.multi_step,
    )
