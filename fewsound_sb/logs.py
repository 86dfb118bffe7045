"""Readable experiment logs: our DEBUG only, and an ``env.log`` of the running interpreter.

SpeechBrain's logging configuration (applied by
``speechbrain.create_experiment_directory``) sends every DEBUG record of every
library to ``log.txt``; matplotlib's font manager alone writes thousands of
lines when a figure is first drawn. :func:`quiet_third_party_debug` adds a
filter to the handlers of the root logger that keeps DEBUG records of
``fewsound_sb``, ``speechbrain`` and ``__main__`` (the recipe script) only;
INFO and above of every library still pass.

SpeechBrain also writes ``env.log`` from ``pip freeze`` of whatever ``pip``
is first on ``PATH``, which need not be the environment that runs the
experiment. :func:`write_env_log` rewrites it from the running interpreter
(``sys.executable``, its version, torch / SpeechBrain versions, the CUDA
devices, and the distributions ``importlib.metadata`` sees from this
interpreter). :func:`setup_experiment_logs` does both; the Brain calls it
when training starts and ``fewsound-fit`` after creating its folder.
"""

import importlib.metadata
import logging
import os
import platform
import sys

import torch
from speechbrain.utils.logger import get_logger

from fewsound_sb.files import write_text

logger = get_logger(__name__)

DEBUG_LOGGERS = ("fewsound_sb", "speechbrain", "__main__")
ENV_LOG = "env.log"


class OwnDebugFilter(logging.Filter):
    """Passes DEBUG records of ``DEBUG_LOGGERS`` only (INFO and up of all).

    Example
    -------
    >>> f = OwnDebugFilter()
    >>> record = lambda name, level: logging.LogRecord(name, level, "", 0, "m", None, None)
    >>> [f.filter(record("matplotlib.font_manager", logging.DEBUG)),
    ...  f.filter(record("fewsound_sb.fitting", logging.DEBUG)),
    ...  f.filter(record("matplotlib", logging.WARNING))]
    [False, True, True]
    """

    def filter(self, record):
        if record.levelno >= logging.INFO:
            return True
        return any(record.name == name or record.name.startswith(name + ".")
                   for name in DEBUG_LOGGERS)


def quiet_third_party_debug():
    """Adds :class:`OwnDebugFilter` to every handler of the root logger (once).

    Example
    -------
    >>> handler = logging.StreamHandler()
    >>> logging.getLogger().addHandler(handler)
    >>> quiet_third_party_debug(); quiet_third_party_debug()
    >>> sum(isinstance(f, OwnDebugFilter) for f in handler.filters)
    1
    >>> logging.getLogger().removeHandler(handler)
    """
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, OwnDebugFilter) for f in handler.filters):
            handler.addFilter(OwnDebugFilter())


def environment_report():
    """The text of ``env.log``: the running interpreter and its packages.

    Returns
    -------
    str

    Example
    -------
    >>> text = environment_report()
    >>> sys.executable in text, "torch==" + importlib.metadata.version("torch") in text
    (True, True)
    """
    import speechbrain

    lines = [
        f"Python: {sys.executable}",
        f"Python version: {platform.python_version()} ({sys.version.split()[0]})",
        f"Platform: {platform.platform()}",
        f"torch: {torch.__version__}",
        f"speechbrain: {speechbrain.__version__}",
        f"CUDA available: {torch.cuda.is_available()}",
    ]
    if torch.cuda.is_available():
        lines.append(f"CUDA version: {torch.version.cuda}")
        lines += [f"GPU {i}: {torch.cuda.get_device_name(i)}"
                  for i in range(torch.cuda.device_count())]
    packages = sorted(
        {f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions()
         if d.metadata["Name"]},
        key=str.lower,
    )
    lines += ["", f"Packages of this interpreter ({len(packages)}, importlib.metadata):"]
    lines += packages
    return "\n".join(lines) + "\n"


def write_env_log(folder):
    """Writes ``<folder>/env.log`` (:func:`environment_report`).

    Example
    -------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> write_env_log(folder)
    >>> open(os.path.join(folder, ENV_LOG)).readline().startswith("Python: ")
    True
    """
    write_text(os.path.join(folder, ENV_LOG), environment_report())


def setup_experiment_logs(folder):
    """:func:`quiet_third_party_debug` and :func:`write_env_log` for ``folder``.

    Example
    -------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> setup_experiment_logs(folder)
    >>> os.path.isfile(os.path.join(folder, ENV_LOG))
    True
    """
    quiet_third_party_debug()
    write_env_log(folder)
