"""fewsound-sb: sound as the weights of a small neural network, for SpeechBrain."""

from setuptools import find_packages, setup

setup(
    name="fewsound_sb",
    version="0.1.0",
    description=(
        "Implicit neural representations of audio (KAN, NeRF, SIREN, RFF, WIRE, FINER), "
        "single-clip fitting and FewSound/HyperSound hypernetworks as a SpeechBrain toolkit"
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["fewsound_sb", "fewsound_sb.*"]),
    # The YAMLs ship inside the package (fewsound_sb/hparams is a link to the
    # top-level hparams/ folder), so `fewsound-fit --inr kan` works after
    # `pip install`, outside the checkout.
    package_data={"fewsound_sb": ["hparams/*.yaml", "hparams/inr/*.yaml"]},
    python_requires=">=3.10",
    install_requires=[
        "speechbrain>=1.0",
        "torch>=2.4",
        "torchaudio>=2.4",
        "hyperpyyaml",
        "sentencepiece",
        "peft",
        "transformers",
        "snac",  # the SNAC encoder's layers (fewsound_sb.lobes.snac)
        "pesq",
        "pystoi",
        "auraloss",
        "soundfile",
        "librosa",
        "numpy",
        "matplotlib",
        "tqdm",
    ],
    extras_require={
        "cdpam": ["cdpam", "resampy", "librosa"],
        "dev": ["pytest", "pytest-timeout", "tensorboard"],  # tensorboard: the recipe test reads the event files
        "tensorboard": ["tensorboard"],  # use_tensorboard: True in the recipe YAMLs
        "bench": ["flashkan", "inkan", "pykan", "pandas"],
    },
    entry_points={"console_scripts": [
        "fewsound-fit=fewsound_sb.fit:main",
        "fewsound-reconstruct=fewsound_sb.inference_cli:main_reconstruct",
        "fewsound-encode=fewsound_sb.inference_cli:main_encode",
        "fewsound-decode=fewsound_sb.inference_cli:main_decode",
        "fewsound-export=fewsound_sb.inference_cli:main_export",
    ]},
)
