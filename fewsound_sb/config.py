"""Command-line overrides and recipe hyperparameters: one checker, one loader.

A model YAML (``hparams/fewsound_kan.yaml``, ``hparams/inr/kan.yaml``, ...)
holds no dataset keys; each recipe has its own small dataset YAML
(``recipes/VCTK/vctk.yaml``: ``data_folder``, the manifests, the prepare
options). :func:`load_recipe_hparams` loads the two as one document, so either
may ``!ref`` the other's keys, and sends every command-line override to the
file that defines the key. :func:`check_overrides` rejects overrides that name
no key (with close matches) before anything is built; recipes, ``fewsound-fit``
and the tests all go through it.

Example
-------
>>> import os, tempfile
>>> folder = tempfile.mkdtemp()
>>> model = os.path.join(folder, "model.yaml")
>>> data = os.path.join(folder, "data.yaml")
>>> _ = open(model, "w").write("output_folder: out\\nbatch_size: 16\\n")
>>> _ = open(data, "w").write("data_folder: !PLACEHOLDER\\nmanifest: !ref <output_folder>/m.json\\n")
>>> hparams, _ = load_recipe_hparams(model, "data_folder: /data\\nbatch_size: 4", data)
>>> hparams["batch_size"], hparams["data_folder"], hparams["manifest"]
(4, '/data', 'out/m.json')
"""

import atexit
import difflib
import os
import re
import tempfile

from hyperpyyaml import load_hyperpyyaml, resolve_references
from speechbrain.utils.logger import get_logger

logger = get_logger(__name__)

_TOP_LEVEL_KEY = re.compile(r"^([A-Za-z_][\w.]*)\s*:", re.MULTILINE)

# Run options SpeechBrain 1.1 no longer parses but that its docs and older
# recipes pass: ``--distributed_launch`` (DDP is now inferred from torchrun's
# RANK / LOCAL_RANK variables). They would otherwise reach the YAML overrides.
IMPLIED_RUN_OPTIONS = ("distributed_launch",)


def yaml_top_level_keys(yaml_text):
    """Top-level keys of a (Hyper)YAML text, in order, without building anything.

    Arguments
    ---------
    yaml_text : str
        The YAML document.

    Returns
    -------
    list of str

    Example
    -------
    >>> yaml_top_level_keys("seed: 1\\nmodel: !new:torch.nn.Linear\\n    in_features: 2\\n")
    ['seed', 'model']
    """
    return _TOP_LEVEL_KEY.findall(yaml_text)


def _read_keys(path):
    with open(path, encoding="utf-8") as fin:
        return yaml_top_level_keys(fin.read())


def check_overrides(hparams_file, overrides):
    """Checks command-line overrides against the YAML(s) before anything is built.

    HyperPyYAML rejects unknown overrides too, but only while it builds the
    objects and with the whole key list; this names the file(s), the bad keys
    and their closest matches. ``--distributed_launch`` is accepted and
    dropped (SpeechBrain 1.1 infers DDP from torchrun's environment).

    Arguments
    ---------
    hparams_file : str or list of str
        Path of the YAML file, or the paths of the YAML files loaded together
        (a model YAML and a recipe's dataset YAML): a key of any of them is
        accepted.
    overrides : str or dict
        As returned by ``speechbrain.parse_arguments`` (YAML text) or a dict.

    Returns
    -------
    str or dict
        The overrides to pass to ``load_hyperpyyaml``.

    Raises
    ------
    ValueError
        Listing each unknown key with up to three close matches.

    Example
    -------
    >>> import tempfile
    >>> path = tempfile.mktemp(suffix=".yaml")
    >>> _ = open(path, "w").write("batch_size: 16\\nlr: 0.1\\n")
    >>> check_overrides(path, "distributed_launch:\\nbatch_size: 8")
    'batch_size: 8'
    >>> try:
    ...     check_overrides(path, "batch_sise: 8")
    ... except ValueError as err:
    ...     print(str(err).splitlines()[1])
    --batch_sise (did you mean: batch_size?)
    """
    files = [hparams_file] if isinstance(hparams_file, (str, os.PathLike)) else list(hparams_file)
    known = [key for path in files for key in _read_keys(path)]
    if isinstance(overrides, dict):
        overrides = {k: v for k, v in overrides.items() if k not in IMPLIED_RUN_OPTIONS}
        given = list(overrides)
    else:
        lines = (overrides or "").splitlines()
        overrides = "\n".join(
            line for line in lines
            if not any(line.startswith(f"{name}:") for name in IMPLIED_RUN_OPTIONS)
        )
        given = yaml_top_level_keys(overrides)
    unknown = [key for key in given if key not in known]
    if not unknown:
        return overrides
    names = " + ".join(f"'{path}'" for path in files)
    lines = [f"Unknown option(s) for {names} (not a key of {'that YAML' if len(files) == 1 else 'those YAMLs'}):"]
    for key in unknown:
        close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
        hint = f" (did you mean: {', '.join(close)}?)" if close else ""
        lines.append(f"--{key}{hint}")
    lines.append(
        "Every top-level YAML key can be overridden; SpeechBrain's run options "
        "(--device, --precision, --max_grad_norm, ...) are also accepted."
    )
    raise ValueError("\n".join(lines))


def load_recipe_hparams(hparams_file, overrides, dataset_yaml):
    """Loads a model YAML together with a recipe's dataset YAML.

    The two files are read as one HyperPyYAML document (model first), so
    either may ``!ref`` a key of the other; each command-line override goes to
    the file that defines its key. Overrides naming a key of neither fail
    with close matches from both (:func:`check_overrides`), and a key defined
    in both files is an error (one definition of each thing).

    Arguments
    ---------
    hparams_file : str
        The dataset-free model YAML (``hparams/fewsound_kan.yaml``, ...).
    overrides : str or dict
        As returned by ``speechbrain.parse_arguments``.
    dataset_yaml : str
        The recipe's dataset YAML (``recipes/VCTK/vctk.yaml``, ...).

    Returns
    -------
    hparams : dict
        The loaded hyperparameters of both files.
    hparams_to_save : str
        Path of a temporary YAML holding both files with the overrides
        applied: pass it to ``sb.create_experiment_directory`` as
        ``hyperparams_to_save`` so the run's ``hyperparams.yaml`` is complete.
        Removed when the process exits.

    Raises
    ------
    ValueError
        On an unknown override or a key defined in both files.

    Example
    -------
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> model, data = os.path.join(folder, "m.yaml"), os.path.join(folder, "d.yaml")
    >>> _ = open(model, "w").write("lr: 0.1\\n")
    >>> _ = open(data, "w").write("mic: mic1\\n")
    >>> hparams, saved = load_recipe_hparams(model, {"mic": "mic2"}, data)
    >>> hparams
    {'lr': 0.1, 'mic': 'mic2'}
    >>> [line for line in open(saved).read().splitlines() if line and line[0] != "#"]
    ['lr: 0.1', 'mic: mic2']
    >>> try:
    ...     load_recipe_hparams(model, "mik: mic2", data)
    ... except ValueError as err:
    ...     print(str(err).splitlines()[1])
    --mik (did you mean: mic?)
    """
    shared = sorted(set(_read_keys(hparams_file)) & set(_read_keys(dataset_yaml)))
    if shared:
        raise ValueError(
            f"Key(s) {', '.join(shared)} defined in both '{hparams_file}' and "
            f"'{dataset_yaml}': dataset keys belong to the dataset YAML only; "
            "remove them from the model YAML."
        )
    overrides = check_overrides([hparams_file, dataset_yaml], overrides)
    texts = []
    for path in (hparams_file, dataset_yaml):
        with open(path, encoding="utf-8") as fin:
            texts.append(f"# ---- {path}\n{fin.read().rstrip()}\n")
    merged = "\n".join(texts)
    hparams = load_hyperpyyaml(merged, overrides)

    fd, hparams_to_save = tempfile.mkstemp(prefix="fewsound_hparams_", suffix=".yaml")
    atexit.register(_remove, hparams_to_save)
    with os.fdopen(fd, "w", encoding="utf-8") as fout:
        fout.write(resolve_references(merged, overrides).getvalue())
    logger.info("Loaded %s with %s", hparams_file, dataset_yaml)
    return hparams, hparams_to_save


def _remove(path):
    if os.path.exists(path):
        os.remove(path)
