"""hf-videolang: efficient video-language methods (UMT, ClipBERT, SMAUG, MAC, E-ViLM) as Hugging Face models."""

from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).parent


class BuildPyWithModelCards(build_py):
    """Ship the top-level ``model_cards/`` sources inside the package as ``hf_videolang/model_cards`` (where
    ``hf_videolang.hub.model_card.default_cards_dir`` looks first), so that ``hf-videolang push`` renders cards from
    a wheel install, not only from a source checkout. Editable installs read ``model_cards/`` in place."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "hf_videolang" / "model_cards"
        target.mkdir(parents=True, exist_ok=True)
        for source in sorted((HERE / "model_cards").iterdir()):
            if source.suffix in (".md", ".yaml"):
                self.copy_file(str(source), str(target / source.name))

# torch is deliberately *not* pinned to a range that admits a newer CUDA build: install the CPU wheel first
# (`pip install torch==2.13.0`), then this package. Nothing here may depend on a package that pulls a vision wheel
# built for another torch.
INSTALL_REQUIRES = [
    "torch>=2.4",
    "transformers>=5.0,<6",
    "huggingface_hub>=1.0",
    "safetensors>=0.4",
    "tokenizers>=0.20",
    "accelerate>=1.0",
    "datasets>=3.0",
    "evaluate>=0.4",
    "av>=12.0",
    "numpy>=1.24",
    "pillow>=10.0",
    "tqdm>=4.60",
]

EXTRAS = {
    "test": ["pytest>=8", "pytest-timeout>=2.3", "ruff>=0.17,<0.18"],
}

setup(
    name="hf-videolang",
    version="0.1.0",
    description="Efficient video-language models (UMT, ClipBERT, SMAUG, MAC, E-ViLM) for the Hugging Face ecosystem",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    package_dir={"": "src"},
    packages=find_packages("src"),
    include_package_data=True,
    # The `evaluate` metric module is loaded by path (evaluate.load), not imported, so it is not a package.
    package_data={"hf_videolang": ["py.typed", "evaluation/evaluate_metrics/*/*.py"]},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    cmdclass={"build_py": BuildPyWithModelCards},
    entry_points={"console_scripts": ["hf-videolang=hf_videolang.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "License :: OSI Approved :: Apache Software License",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
