"""The checks every hf-videolang model family runs, in the manner of transformers' ``ModelTesterMixin``.

A family's test module declares one class::

    class TestEvilmModels(ModelTesterMixin):
        all_model_classes = (EvilmModel, EvilmForPreTraining, ...)

        def prepare_config_and_inputs(self, model_class):
            return config, inputs          # inputs include labels, so that task models return a loss

        def loss_weights(self, config, model_class):   # optional
            return {"mlm": 1.0, ...}       # for the "loss is the weighted sum of its terms" check

Switches: ``test_attentions``, ``test_hidden_states``, ``test_gradient_checkpointing``, ``test_sdpa``,
``test_torch_compile`` (slow: runs with ``RUN_SLOW=1``), ``remote_code_classes`` (the classes loaded through
``trust_remote_code`` in a fresh process; default: the first class) and ``parameters_without_gradient``
(``{class: {parameter names or module prefixes}}`` that a forward legitimately leaves without a gradient, such
as the text side of a video-only head).

Each check runs over ``all_model_classes`` and names the class that failed.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import pytest
import torch
from safetensors.torch import save_file
from transformers.utils import ModelOutput

slow = pytest.mark.skipif(not os.environ.get("RUN_SLOW"), reason="slow: set RUN_SLOW=1 to run it")


def _tensors(value: Any, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor inside an output (ModelOutput, tuple, dict), with a dotted name."""
    if isinstance(value, torch.Tensor):
        yield prefix, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _tensors(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, (tuple, list)):
        for index, item in enumerate(value):
            yield from _tensors(item, f"{prefix}[{index}]")


def _first_tensor(output: Any) -> tuple[str, torch.Tensor]:
    for name, tensor in _tensors(output):
        if tensor.is_floating_point():
            return name, tensor
    raise AssertionError(f"the output holds no floating-point tensor: {type(output).__name__}")


def _fields_named(output: Any, word: str) -> list[Any]:
    """Values of every (nested) output field whose name contains `word` and that is not None."""
    found = []
    if isinstance(output, Mapping):
        for key, item in output.items():
            if word in key and item is not None:
                found.append(item)
            elif isinstance(item, Mapping):
                found.extend(_fields_named(item, word))
    return found


class ModelTesterMixin:
    all_model_classes: ClassVar[tuple[type, ...]] = ()
    test_attentions: ClassVar[bool] = True
    test_hidden_states: ClassVar[bool] = True
    test_gradient_checkpointing: ClassVar[bool] = True
    test_sdpa: ClassVar[bool] = True
    test_torch_compile: ClassVar[bool] = True
    remote_code_classes: ClassVar[tuple[type, ...] | None] = None
    parameters_without_gradient: ClassVar[dict[type, set[str]]] = {}

    # ------------------------------------------------------------------------------------------- to implement

    def prepare_config_and_inputs(self, model_class: type) -> tuple[Any, dict[str, Any]]:
        raise NotImplementedError

    def loss_weights(self, config: Any, model_class: type) -> dict[str, float] | None:
        return None

    # ------------------------------------------------------------------------------------------- helpers

    def _build(self, model_class: type, config: Any, seed: int = 0, attn_implementation: str | None = None):
        config = copy.deepcopy(config)
        if attn_implementation is not None:
            config._attn_implementation = attn_implementation
            for name in getattr(config, "sub_configs", {}) or {}:
                sub = getattr(config, name, None)
                if sub is not None and hasattr(sub, "_attn_implementation"):
                    sub._attn_implementation = attn_implementation
        torch.manual_seed(seed)
        return model_class(config)

    def _forward(self, model, inputs: dict[str, Any], **kwargs) -> Any:
        return model(**inputs, **kwargs)

    # ------------------------------------------------------------------------------------------- checks

    def test_gradients_reach_every_trainable_parameter(self):
        for model_class in self.all_model_classes:
            config, inputs = self.prepare_config_and_inputs(model_class)
            model = self._build(model_class, config).train()
            output = self._forward(model, inputs)
            loss = getattr(output, "loss", None)
            if loss is None:  # base models: any differentiable function of every output tensor
                loss = sum(t.float().mean() for _, t in _tensors(output) if t.is_floating_point() and t.requires_grad)
            loss.backward()
            allowed = tuple(self.parameters_without_gradient.get(model_class, ()))
            silent = [name for name, p in model.named_parameters()
                      if p.requires_grad and not any(name == a or name.startswith(a + ".") for a in allowed)
                      and (p.grad is None or not p.grad.abs().sum() > 0)]  # fmt: skip
            assert not silent, f"{model_class.__name__}: no gradient reaches {silent}"
            broken = [name for name, p in model.named_parameters() if p.grad is not None and not p.grad.isfinite().all()]
            assert not broken, f"{model_class.__name__}: non-finite gradients in {broken}"

    def test_save_and_load_round_trip_is_bit_exact(self, tmp_path):
        for model_class in self.all_model_classes:
            config, inputs = self.prepare_config_and_inputs(model_class)
            model = self._build(model_class, config).eval()
            folder = tmp_path / model_class.__name__
            model.save_pretrained(folder)
            assert (folder / "model.safetensors").is_file(), f"{model_class.__name__}: no safetensors file"
            again = model_class.from_pretrained(folder).eval()
            for key, value in model.state_dict().items():
                assert torch.equal(value, again.state_dict()[key]), f"{model_class.__name__}: {key} differs"
            with torch.no_grad():
                name, first = _first_tensor(self._forward(model, inputs))
                _, second = _first_tensor(self._forward(again, inputs))
            assert torch.equal(first, second), f"{model_class.__name__}: {name} differs after reload"

    def test_sdpa_equals_eager(self):
        if not self.test_sdpa:
            pytest.skip("the family has no SDPA path")
        for model_class in self.all_model_classes:
            config, inputs = self.prepare_config_and_inputs(model_class)
            outputs = {}
            for backend in ("sdpa", "eager"):
                model = self._build(model_class, config, attn_implementation=backend).eval()
                with torch.no_grad():
                    outputs[backend] = dict(_tensors(self._forward(model, inputs)))
            for name, value in outputs["eager"].items():
                if value.is_floating_point():
                    torch.testing.assert_close(outputs["sdpa"][name], value, atol=1e-5, rtol=1e-4,
                                               msg=lambda m, n=name, c=model_class: f"{c.__name__}.{n}: {m}")  # fmt: skip

    def test_gradient_checkpointing_gives_the_same_loss_and_gradients(self):
        if not self.test_gradient_checkpointing:
            pytest.skip("the family does not checkpoint")
        for model_class in self.all_model_classes:
            if not model_class.supports_gradient_checkpointing:
                continue
            config, inputs = self.prepare_config_and_inputs(model_class)
            results = []
            for checkpointing in (False, True):
                model = self._build(model_class, config).train()
                if checkpointing:  # transformers 5.x renames gradient_checkpointing_enable (deprecated, v6)
                    getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)()
                torch.manual_seed(1)
                output = self._forward(model, inputs)
                loss = output.loss if getattr(output, "loss", None) is not None else _first_tensor(output)[1].mean()
                loss.backward()
                results.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
            (loss_a, grads_a), (loss_b, grads_b) = results
            torch.testing.assert_close(loss_a, loss_b, msg=f"{model_class.__name__}: loss changes with checkpointing")
            assert grads_a.keys() == grads_b.keys(), f"{model_class.__name__}: checkpointing changes which grads exist"
            for name in grads_a:
                torch.testing.assert_close(grads_a[name], grads_b[name], atol=1e-5, rtol=1e-4,
                                           msg=lambda m, n=name, c=model_class: f"{c.__name__}.{n}: {m}")  # fmt: skip

    def test_loss_is_the_weighted_sum_of_its_terms(self):
        checked = 0
        for model_class in self.all_model_classes:
            config, inputs = self.prepare_config_and_inputs(model_class)
            weights = self.loss_weights(config, model_class)
            if not weights:
                continue
            model = self._build(model_class, config).eval()
            with torch.no_grad():
                output = self._forward(model, inputs)
            terms = {name: getattr(output, f"loss_{name}") for name in weights}
            assert any(value is not None for value in terms.values()), f"{model_class.__name__}: no loss term"
            expected = sum(weights[name] * value for name, value in terms.items() if value is not None)
            torch.testing.assert_close(output.loss, expected, msg=f"{model_class.__name__}: loss != weighted sum")
            checked += 1
        if not checked:
            pytest.skip("no class declares loss weights")

    def test_hidden_states_attentions_and_tuples(self):
        for model_class in self.all_model_classes:
            config, inputs = self.prepare_config_and_inputs(model_class)
            model = self._build(model_class, config, attn_implementation="eager").eval()
            with torch.no_grad():
                reference = self._forward(model, inputs)
                if self.test_hidden_states:
                    output = self._forward(model, inputs, output_hidden_states=True)
                    found = _fields_named(output, "hidden_states")
                    assert found and all(isinstance(v, tuple) and v for v in found), (
                        f"{model_class.__name__}: output_hidden_states=True returned no hidden states"
                    )
                if self.test_attentions:
                    output = self._forward(model, inputs, output_attentions=True)
                    found = _fields_named(output, "attentions")
                    assert found and all(isinstance(v, tuple) and v for v in found), (
                        f"{model_class.__name__}: output_attentions=True returned no attentions"
                    )
                as_tuple = self._forward(model, inputs, return_dict=False)
            assert isinstance(as_tuple, tuple) and not isinstance(as_tuple, ModelOutput), (
                f"{model_class.__name__}: return_dict=False did not return a tuple"
            )
            name, first = _first_tensor(reference)
            assert torch.equal(_first_tensor(as_tuple)[1], first), f"{model_class.__name__}: tuple[0] != {name}"

    def test_input_embeddings_resize(self):
        for model_class in self.all_model_classes:
            config, _ = self.prepare_config_and_inputs(model_class)
            model = self._build(model_class, config)
            try:
                embeddings = model.get_input_embeddings()
            except NotImplementedError:
                continue
            if embeddings is None:
                continue
            size = embeddings.weight.shape[0]
            model.resize_token_embeddings(size + 3)
            assert model.get_input_embeddings().weight.shape[0] == size + 3, model_class.__name__

    def test_trust_remote_code_load_in_a_fresh_process(self, tmp_path):
        from hf_videolang.hub.remote_code import default_auto_class, save_with_remote_code

        classes = self.remote_code_classes if self.remote_code_classes is not None else self.all_model_classes[:1]
        if not classes:
            pytest.skip("no class to load with remote code")
        threads = torch.get_num_threads()
        jobs = []
        torch.set_num_threads(1)
        try:
            for model_class in classes:
                config, inputs = self.prepare_config_and_inputs(model_class)
                model = self._build(model_class, config).eval()
                with torch.no_grad():
                    name, expected = _first_tensor(self._forward(model, inputs))
                folder = tmp_path / model_class.__name__
                save_with_remote_code(model, folder)
                tensors = {k: v for k, v in inputs.items() if isinstance(v, torch.Tensor)}
                save_file({**{f"input.{k}": v.contiguous() for k, v in tensors.items()},
                           "expected": expected.contiguous()}, str(folder / "expected.safetensors"))  # fmt: skip
                jobs.append((model_class.__name__, default_auto_class(model_class), folder, name))
        finally:
            torch.set_num_threads(threads)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"), OMP_NUM_THREADS="1")
        for class_name, auto_class, folder, name in jobs:
            result = subprocess.run([sys.executable, "-c", _REMOTE_LOADER, str(folder), auto_class, name], env=env,
                                    cwd=tmp_path, capture_output=True, text=True, timeout=180)  # fmt: skip
            assert result.returncode == 0, f"{class_name}: {result.stderr[-3000:]}"
            assert f"LOADED {class_name}" in result.stdout, result.stdout

    @slow
    def test_torch_compile_forward_runs(self):
        if not self.test_torch_compile:
            pytest.skip("compile is switched off for this family")
        model_class = self.all_model_classes[0]
        config, inputs = self.prepare_config_and_inputs(model_class)
        model = self._build(model_class, config).eval()
        compiled = torch.compile(model)
        with torch.no_grad():
            _, eager = _first_tensor(self._forward(model, inputs))
            _, fast = _first_tensor(self._forward(compiled, inputs))
        torch.testing.assert_close(fast, eager, atol=1e-4, rtol=1e-4)


_REMOTE_LOADER = textwrap.dedent(
    """
    import sys

    class _Block:
        def find_spec(self, name, path=None, target=None):
            if name == "hf_videolang" or name.startswith("hf_videolang."):
                raise ImportError(name)

    sys.meta_path.insert(0, _Block())
    import torch
    import transformers
    from safetensors.torch import load_file

    torch.set_num_threads(1)
    folder, auto_class, name = sys.argv[1:4]
    model = getattr(transformers, auto_class).from_pretrained(folder, trust_remote_code=True).eval()
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    data = load_file(folder + "/expected.safetensors")
    inputs = {k[len("input."):]: v for k, v in data.items() if k.startswith("input.")}
    with torch.no_grad():
        output = model(**inputs)
    value = output
    for part in name.replace("]", "").replace("[", ".").split("."):
        value = value[int(part)] if part.isdigit() else value[part]
    assert torch.equal(value, data["expected"]), "the remote-code model does not reproduce " + name
    print("LOADED", type(model).__name__)
    """
)
