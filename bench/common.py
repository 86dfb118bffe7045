"""Timing, memory and machine helpers shared by the benchmark scripts.

Every timing is taken side by side: the callables of one table are run in
turn, round after round (interleaved), so that load from other processes hits
all of them alike; the reported number is the median over the rounds after
the warm-up rounds. On CUDA every call is bracketed by ``torch.cuda.synchronize``.
"""

import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time

import torch

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
logger = logging.getLogger("bench")


def sync(device):
    """Wait for queued work on ``device`` (no-op on CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def interleaved_medians(fns, repeats, warmup, device="cpu", repeats_for=None):
    """Median wall time (ms) of each callable, measured round-robin.

    Arguments
    ---------
    fns : dict of str -> callable
        The callables (same order every round).
    repeats : int
        Timed rounds.
    warmup : int
        Untimed rounds first (compilation, allocator warm-up).
    device : str
        Device to synchronise.
    repeats_for : dict of str -> int, optional
        Fewer timed rounds for some (slow) callables.

    Returns
    -------
    dict of str -> dict
        ``{"median_ms", "min_ms", "samples_ms"}`` per callable.
    """
    repeats_for = repeats_for or {}
    samples = {name: [] for name in fns}
    names = ", ".join(fns)
    for rnd in range(warmup):
        logger.info("warm-up round %d/%d: %s", rnd + 1, warmup, names)
        for fn in fns.values():
            fn()
    sync(device)
    for rnd in range(repeats):
        logger.info("timed round %d/%d: %s", rnd + 1, repeats, names)
        for name, fn in fns.items():
            if rnd >= repeats_for.get(name, repeats):
                continue
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            samples[name].append(1000.0 * (time.perf_counter() - start))
    return {
        name: {
            "median_ms": statistics.median(values),
            "min_ms": min(values),
            "samples_ms": [round(v, 2) for v in values],
        }
        for name, values in samples.items()
        if values
    }


def machine_info(device):
    """CPU model, cores, torch version, threads, GPU name (if any)."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fin:
            for line in fin:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "device": str(device),
    }
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    try:
        info["load_average"] = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        pass
    return info


# ---------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------
def _status_kib(field):
    """A ``kB`` field of /proc/self/status (VmRSS, VmHWM), or None."""
    try:
        with open("/proc/self/status", encoding="utf-8") as fin:
            for line in fin:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_mib():
    """Current resident set size in MiB (``/proc/self/status`` VmRSS)."""
    kib = _status_kib("VmRSS")
    return None if kib is None else kib / 1024.0


def peak_rss_mib():
    """High-water resident set size in MiB (VmHWM, else ``ru_maxrss``)."""
    kib = _status_kib("VmHWM")
    if kib is None:
        import resource

        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024.0


def measure_peak_memory(run, device, steps=2):
    """Peak memory (MiB) that ``steps`` calls of ``run`` add on ``device``.

    CUDA: ``torch.cuda.max_memory_allocated`` after a reset, minus the memory
    allocated before. CPU: the process's high-water RSS over the calls minus
    its RSS just before them (call this in a fresh process that has built only
    the model and inputs: see ``bench/memory_probe.py``).
    """
    if torch.device(device).type == "cuda":
        run()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        for _ in range(steps):
            run()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20, "cuda.max_memory_allocated"
    base = rss_mib()
    for _ in range(steps):
        run()
    return peak_rss_mib() - base, "peak RSS (VmHWM) - RSS before, fresh process"


def probe_memory_subprocess(args, timeout=1800):
    """Run ``bench/memory_probe.py`` with ``args`` in a fresh process; parsed JSON or error dict."""
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-m", "bench.memory_probe", *[str(a) for a in args]]
    try:
        done = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": "timeout"}
    if done.returncode != 0:
        return {"error": (done.stderr or done.stdout).strip().splitlines()[-1:] or ["failed"]}
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if lines else {"error": "no output"}


def script_report(script, argv, render, data_key, data):
    """A single-table bench script's report: ``render(data, info, command)`` → (Markdown, JSON payload).

    ``info`` holds the CPU, torch version and threads; ``command`` is the command line
    that ran (``python bench/<script> <argv>``). The JSON payload is
    ``{"command": command, data_key: data}``.
    """
    info = machine_info("cpu")
    args = argv if argv is not None else sys.argv[1:]
    command = f"python bench/{script} {' '.join(args)}".strip()
    text = render(data, {"cpu": info.get("cpu", "cpu"), "torch": torch.__version__,
                         "threads": torch.get_num_threads()}, command)
    return text, {"command": command, data_key: data}


def write_report(output, text, payload):
    """Write ``output`` (Markdown) and the JSON payload next to it (same stem, ``.json``)."""
    with open(output, "w", encoding="utf-8") as f:
        f.write(text)
    with open(os.path.splitext(output)[0] + ".json", "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=1)
