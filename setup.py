"""hf-videolang: efficient video-language methods (UMT, ClipBERT, SMAUG, MAC, E-ViLM) as Hugging Face models."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

# torch is deliberately *not* pinned to a range that admits a newer CUDA build: install the CPU wheel first
# (`pip install torch==2.13.0`), then this package. Nothing here may depend on a package that pulls a vision wheel built for another torch.
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
    "test": ["pytest>=8", "pytest-timeout>=2.3"],
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
    entry_points={"console_scripts": ["hf-videolang=hf_videolang.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "License :: OSI Approved :: Apache Software License",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
