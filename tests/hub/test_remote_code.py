"""Tests of the trust_remote_code bundler: a saved UMT folder loads in a process that cannot import hf_videolang."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from hf_videolang.hub import remote_code
from hf_videolang.hub.remote_code import RemoteCodeError, collect_remote_code, save_with_remote_code
from hf_videolang.models.umt import UmtConfig, UmtForPreTraining, UmtModel

SIZE, PATCH, FRAMES, VOCAB = 32, 8, 2, 100


def tiny_umt_config() -> UmtConfig:
    """Hidden 32, 2 layers, 2 frames of 32 px (as tests/models/umt builds), tiny BERT and CLIP teacher."""
    text = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                max_position_embeddings=32, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)  # fmt: skip
    return UmtConfig(
        vision_config=dict(image_size=SIZE, patch_size=PATCH, num_frames=FRAMES, hidden_size=32, num_hidden_layers=2,
                           num_attention_heads=4, intermediate_size=64, drop_path_rate=0.0),
        text_config=text,
        multimodal_config=dict(text, num_hidden_layers=1),
        teacher_config=dict(hidden_size=24, intermediate_size=48, num_hidden_layers=3, num_attention_heads=2,
                            patch_size=PATCH, image_size=SIZE, projection_dim=16),
        uta_num_layers=2,
        projection_dim=16,
    )  # fmt: skip


def _imports_of(source: str) -> list[ast.ImportFrom | ast.Import]:
    return [n for n in ast.walk(ast.parse(source)) if isinstance(n, (ast.Import, ast.ImportFrom))]


# A process that refuses to import hf_videolang, loads the folder through the Auto classes and compares outputs.
_LOADER = textwrap.dedent(
    """
    import sys

    class _BlockHfVideolang:
        def find_spec(self, name, path=None, target=None):
            if name == "hf_videolang" or name.startswith("hf_videolang."):
                raise ImportError(f"hf_videolang is blocked in this process ({name})")
            return None

    sys.meta_path.insert(0, _BlockHfVideolang())
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModel

    torch.set_num_threads(1)
    folder = sys.argv[1]
    config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    data = load_file(folder + "/expected.safetensors")
    with torch.no_grad():
        out = model(pixel_values=data["pixel_values"], input_ids=data["input_ids"],
                    attention_mask=data["attention_mask"])
    for key in ("logits_per_video", "video_embeds", "text_embeds"):
        assert torch.equal(out[key], data[key]), key
    assert type(model).__name__ == "UmtModel" and type(config).__name__ == "UmtConfig"
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    assert not [m for m in sys.modules if m.startswith("hf_videolang")]
    print("LOADED", type(model).__module__)
    """
)


def test_saved_umt_loads_with_trust_remote_code_without_hf_videolang(tmp_path):
    torch.manual_seed(0)
    model = UmtModel(tiny_umt_config()).eval()
    gen = torch.Generator().manual_seed(1)
    inputs = dict(
        pixel_values=torch.randn(2, FRAMES, 3, SIZE, SIZE, generator=gen),
        input_ids=torch.randint(5, VOCAB, (2, 6), generator=gen),
        attention_mask=torch.tensor([[1] * 6, [1] * 4 + [0] * 2]),
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same reduction order as the single-threaded loader
    try:
        with torch.no_grad():
            out = model(**inputs)
    finally:
        torch.set_num_threads(threads)

    folder = tmp_path / "umt"
    written = save_with_remote_code(model, folder)
    expected = {**inputs, **{k: out[k].contiguous() for k in ("logits_per_video", "video_embeds", "text_embeds")}}
    save_file(expected, str(folder / "expected.safetensors"))

    names = {p.name for p in written}
    assert {"configuration_umt.py", "modeling_umt.py", "hfvl_layers_attention.py", "hfvl_video_masking.py"} <= names
    auto_map = json.loads((folder / "config.json").read_text())["auto_map"]
    assert auto_map == {"AutoConfig": "configuration_umt.UmtConfig", "AutoModel": "modeling_umt.UmtModel"}

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"), OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-c", _LOADER, str(folder)], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "LOADED transformers_modules" in result.stdout


def test_bundle_has_no_package_imports_and_every_relative_import_is_a_bundled_file(tmp_path):
    model = UmtForPreTraining(tiny_umt_config())
    written = save_with_remote_code(model, tmp_path)
    files = {p.name for p in written}
    for path in written:
        for node in _imports_of(path.read_text()):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            assert not any(m.startswith("hf_videolang") for m in modules), (path.name, ast.unparse(node))
            if isinstance(node, ast.ImportFrom) and node.level:
                assert node.level == 1, (path.name, ast.unparse(node))
                assert f"{node.module}.py" in files, (path.name, ast.unparse(node))
    auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    assert auto_map["AutoModelForPreTraining"] == "modeling_umt.UmtForPreTraining"
    # save_with_remote_code must not leave an Auto class registered on the class (a global side effect).
    assert UmtForPreTraining._auto_class is None and "_auto_class" not in vars(model)


def test_explicit_auto_classes_and_registered_auto_class(tmp_path, monkeypatch):
    model = UmtModel(tiny_umt_config())
    save_with_remote_code(model, tmp_path / "a", auto_class=["AutoModel", "AutoModelForPreTraining"])
    auto_map = json.loads((tmp_path / "a" / "config.json").read_text())["auto_map"]
    assert auto_map["AutoModel"] == auto_map["AutoModelForPreTraining"] == "modeling_umt.UmtModel"
    # After register_for_auto_class, plain save_pretrained runs custom_object_save, which cannot follow
    # `from ...layers import`; save_with_remote_code honours the registered class and bundles instead.
    monkeypatch.setattr(UmtModel, "_auto_class", "AutoModelForVideoClassification")
    save_with_remote_code(model, tmp_path / "b")
    auto_map = json.loads((tmp_path / "b" / "config.json").read_text())["auto_map"]
    assert auto_map["AutoModelForVideoClassification"] == "modeling_umt.UmtModel" and "AutoModel" not in auto_map
    assert "from .hfvl_layers_attention import Attention" in (tmp_path / "b" / "modeling_umt.py").read_text()
    assert "is_remote_code" not in vars(model) and UmtModel.is_remote_code()


# ---------------------------------------------------------------------------------------------------- synthetic


def _fake_package(root: Path, files: dict[str, str]) -> Path:
    package = root / "hf_videolang"
    for name, source in files.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return package


def test_rewrites_absolute_relative_reexported_submodule_and_nested_imports(tmp_path, monkeypatch):
    package = _fake_package(tmp_path, {
        "__init__.py": "",
        "layers/__init__.py": "from .attention import Attention\nfrom .mlp import *\n",
        "layers/attention.py": "from ..util import helper\nclass Attention: pass\n",
        "layers/mlp.py": "class Mlp: pass\n",
        "util.py": "def helper(): return 1\n",
        "video/__init__.py": "",
        "video/masking.py": "class Masker: pass\n",
        "models/m/__init__.py": "",
        "models/m/modeling_m.py": """\
            from ...layers import (
                Attention,
                Mlp as MyMlp,
            )
            from hf_videolang.video.masking import Masker
            from ...video import masking
            import hf_videolang.util as util_mod

            def build():
                from ...util import helper
                return helper()
            """,
    })  # fmt: skip
    monkeypatch.setattr(remote_code, "_package_root", lambda: package)
    bundle = collect_remote_code(["hf_videolang.models.m.modeling_m"])
    assert set(bundle) == {"modeling_m.py", "hfvl_layers_attention.py", "hfvl_layers.py", "hfvl_layers_mlp.py",
                           "hfvl_util.py", "hfvl_video_masking.py"}  # fmt: skip
    statements = {ast.unparse(n) for n in _imports_of(bundle["modeling_m.py"])}
    assert "from .hfvl_layers_attention import Attention" in statements
    # `Mlp` comes in through `from .mlp import *`: the __init__ that re-exports it is bundled and imported.
    assert "from .hfvl_layers import Mlp as MyMlp" in statements
    assert "from .hfvl_video_masking import Masker" in statements
    assert "from . import hfvl_video_masking as masking" in statements
    assert "from . import hfvl_util as util_mod" in statements
    assert "from .hfvl_util import helper" in statements  # the import inside build(), indentation kept
    assert "from .hfvl_util import helper" in {ast.unparse(n) for n in _imports_of(bundle["hfvl_layers_attention.py"])}
    assert "from .hfvl_layers_mlp import *" in bundle["hfvl_layers.py"]

    # The rewritten files work as a flat package of their own.
    flat = tmp_path / "flat" / "bundle"
    flat.mkdir(parents=True)
    (flat / "__init__.py").write_text("")
    for name, source in bundle.items():
        (flat / name).write_text(source)
    monkeypatch.syspath_prepend(str(flat.parent))
    from bundle import modeling_m  # noqa: PLC0415

    assert modeling_m.build() == 1 and modeling_m.masking.Masker is modeling_m.Masker
    assert modeling_m.MyMlp.__module__ == "bundle.hfvl_layers_mlp"
    for name in [m for m in sys.modules if m == "bundle" or m.startswith("bundle.")]:
        del sys.modules[name]


def test_bare_package_import_is_refused_with_file_and_line(tmp_path, monkeypatch):
    package = _fake_package(
        tmp_path, {"__init__.py": "", "util.py": "", "modeling_x.py": "\nimport hf_videolang.util\n"}
    )
    monkeypatch.setattr(remote_code, "_package_root", lambda: package)
    with pytest.raises(RemoteCodeError, match=r"modeling_x.py:2: `import hf_videolang.util`"):
        collect_remote_code(["hf_videolang.modeling_x"])


def test_non_package_model_is_refused(tmp_path):
    from transformers import BertConfig, BertModel

    model = BertModel(BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8,
                                 vocab_size=10))  # fmt: skip
    with pytest.raises(RemoteCodeError, match="transformers.models.bert.configuration_bert is not an hf_videolang"):
        save_with_remote_code(model, tmp_path)
    assert not (tmp_path / "config.json").exists()
