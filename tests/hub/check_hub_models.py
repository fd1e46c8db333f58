"""Load models from a Hub endpoint and report what they do, as JSON on the last stdout line (run by tests/hub).

``python check_hub_models.py SPEC.json``; the spec::

    {"block_hf_videolang": bool, "trust_remote_code": bool,
     "models": [{"repo": "org/name", "auto": "AutoModel", "expected": "ref.safetensors", "keys": [...],
                 "inputs": [...]}],
     "pipelines": [{"repo": ..., "video": ..., "question": ..., "top_k": 3}],
     "snippets": [{"repo": ..., "cwd": folder holding video.mp4}],
     "cards": ["org/name", ...]}

With ``block_hf_videolang`` the process cannot import hf_videolang (a meta-path finder refuses it; the package is
also installed in editable mode), so the models can only come from the repositories' own code.
"""

import contextlib
import io
import json
import os
import re
import sys

spec = json.load(open(sys.argv[1]))


class _BlockHfVideolang:
    def find_spec(self, name, path=None, target=None):
        if name == "hf_videolang" or name.startswith("hf_videolang."):
            raise ImportError(f"hf_videolang is blocked in this process ({name})")
        return None


if spec.get("block_hf_videolang"):
    sys.meta_path.insert(0, _BlockHfVideolang())
else:
    import hf_videolang  # noqa: F401  (registers the Auto classes, as a user's `import hf_videolang` does)

import torch  # noqa: E402
import transformers  # noqa: E402
from huggingface_hub import ModelCard  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

torch.set_num_threads(1)
report = {"models": [], "pipelines": [], "snippets": [], "cards": {}}
kwargs = {"trust_remote_code": True} if spec.get("trust_remote_code") else {}
for item in spec.get("models", []):
    model = getattr(transformers, item["auto"]).from_pretrained(item["repo"], **kwargs).eval()
    data = load_file(item["expected"])
    with torch.no_grad():
        out = model(**{k: data[k] for k in item["inputs"]})
    report["models"].append({
        "repo": item["repo"], "auto": item["auto"], "class": type(model).__name__, "module": type(model).__module__,
        "equal": {k: bool(torch.equal(out[k], data[k])) for k in item["keys"]},
        "max_abs_diff": {k: float((out[k] - data[k]).abs().max()) for k in item["keys"]},
    })
for item in spec.get("pipelines", []):
    vqa = transformers.pipeline("video-question-answering", model=item["repo"], **kwargs)
    answers = vqa(item["video"], question=item["question"], top_k=item["top_k"])
    report["pipelines"].append({"repo": item["repo"], "class": type(vqa).__name__, "module": type(vqa).__module__,
                                "answers": answers})
for item in spec.get("snippets", []):
    text = ModelCard.load(item["repo"]).text
    section = text.split("## Quick start", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL).group(1)
    here = os.getcwd()
    os.chdir(item["cwd"])
    stdout = io.StringIO()
    try:
        with contextlib.redirect_stdout(stdout):
            exec(compile(code, f"<card snippet of {item['repo']}>", "exec"), {"__name__": "__main__"})
    finally:
        os.chdir(here)
    report["snippets"].append({"repo": item["repo"], "code": code, "stdout": stdout.getvalue()})
for repo in spec.get("cards", []):
    card = ModelCard.load(repo)
    report["cards"][repo] = {"data": card.data.to_dict(), "text": card.text}
report["hf_videolang_imported"] = sorted(m for m in sys.modules if m.startswith("hf_videolang"))[:3]
print(json.dumps(report, default=str))
