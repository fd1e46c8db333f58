"""Checks every hf-videolang model must pass, shared as a mixin (the idea of transformers' ``ModelTesterMixin``).

Use::

    class TestMacModel(ModelTesterMixin):
        all_model_classes = (MacVisionModel, MacModel, MacForVideoTextRetrieval)

        def prepare_config_and_inputs(self, model_class):
            return tiny_config(), dict(pixel_values=..., input_ids=..., labels=...)

        def loss_weights(self, config, model_class):  # optional
            return {"loss_vtc": 1.0} if model_class is MacForVideoTextRetrieval else None

Every ``test_*`` method below runs once per class of ``all_model_classes`` (``pytest_generate_tests`` parametrizes
``model_class``; test ids are class names). ``prepare_config_and_inputs`` returns a fresh tiny config and the keyword
inputs of ``model_class.forward``; give task models their labels so that they return ``loss``. Base models without a
loss get their gradient check from a surrogate (see :func:`_objective`).

Switches and settings (class attributes):

- ``test_attentions``, ``test_hidden_states``, ``test_torch_compile``, ``test_gradient_checkpointing``,
  ``test_sdpa``, ``test_resize_embeddings``: turn a check off (``False``).
- ``parameters_without_gradient``: ``fnmatch`` patterns of trainable parameter names that may legitimately get no
  (or a zero) gradient from the test inputs, e.g. ``{"*.pooler.*"}``. Empty by default: every trainable parameter must
  get a finite, not all-zero gradient.
- ``remote_code_entry``: the Auto class (``auto_map`` entry) a fresh process loads every saved class through,
  ``"AutoModel"`` by default; ``"default"`` uses :func:`hf_videolang.hub.remote_code.default_auto_class`; ``None``
  skips the ``trust_remote_code`` check.
- ``sdpa_atol``, ``checkpointing_atol``, ``compile_atol``: tolerances.

``torch.compile`` with inductor is ``@pytest.mark.slow`` (run with ``RUN_SLOW=1``); the default suite traces the
forward with dynamo's ``"eager"`` backend, which catches graph breaks that raise and wrong outputs in seconds.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import pytest
import torch
from safetensors.torch import save_file
from torch import nn
from transformers import PreTrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput

# ---------------------------------------------------------------------------------------------------- helpers


def named_tensors(value: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor in a (nested) model output, by dotted field name: ``{"vision_model_output.pooler_output": t}``.

    ``ModelOutput``s and dicts are walked by key, tuples and lists by index; None values are skipped (as
    ``ModelOutput.to_tuple`` skips them), so a dict output and its ``return_dict=False`` tuple flatten to the same
    tensors in the same order.
    """
    out: dict[str, torch.Tensor] = {}
    if isinstance(value, torch.Tensor):
        out[prefix or "output"] = value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            out.update(named_tensors(item, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(value, (tuple, list)):
        for index, item in enumerate(value):
            out.update(named_tensors(item, f"{prefix}.{index}" if prefix else str(index)))
    return out


def named_fields(value: Any, prefix: str = "") -> Iterator[tuple[str, str, Any]]:
    """``(dotted path, field name, value)`` of every field of a (nested) ``ModelOutput``, None values included."""
    if isinstance(value, ModelOutput):
        for key in value.__dataclass_fields__:
            item = getattr(value, key)
            path = f"{prefix}.{key}" if prefix else key
            yield path, key, item
            yield from named_fields(item, path)


def assert_tensors_close(
    actual: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], atol: float, what: str
) -> None:
    """Same names, same shapes, values within ``atol`` (``atol=0``: bit for bit); one message listing every field
    that differs, with its largest absolute difference."""
    assert list(actual) == list(expected), f"{what}: fields differ: got {list(actual)}, expected {list(expected)}"
    problems = []
    for name, want in expected.items():
        got = actual[name]
        if got.shape != want.shape or got.dtype != want.dtype:
            problems.append(f"{name}: {got.dtype}{tuple(got.shape)} vs {want.dtype}{tuple(want.shape)}")
            continue
        if atol == 0:
            same = torch.equal(got, want)
        else:
            same = torch.allclose(got.float(), want.float(), atol=atol, rtol=0, equal_nan=False)
        if not same:
            diff = (got.float() - want.float()).abs()
            worst = float(diff.nan_to_num(float("inf")).max()) if diff.numel() else 0.0
            problems.append(f"{name}: max |diff| {worst:.3g}")
    assert not problems, f"{what} (atol={atol}): " + "; ".join(problems)


def _objective(output: ModelOutput) -> tuple[torch.Tensor, str]:
    """The scalar to backpropagate: ``output.loss`` when there is one, else the sum of the mean squares of every
    floating output tensor (so that base models without a loss still show which parameters take part)."""
    loss = output.get("loss") if isinstance(output, Mapping) else None
    if loss is not None:
        return loss, "loss"
    floats = [t for t in named_tensors(output).values() if t.is_floating_point() and t.requires_grad]
    assert floats, "the model returned no floating tensor that requires grad; nothing to backpropagate"
    return sum(t.float().pow(2).mean() for t in floats), "sum of mean squared outputs (no loss returned)"


def _matches(name: str, patterns: frozenset[str] | set[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


_SKIP_REMOTE = "remote_code_entry is None"

# A process that cannot import hf_videolang loads each saved folder with `trust_remote_code=True` and reruns the
# forward. argv: folders; each holds check.json, inputs.safetensors, expected.safetensors.
_FRESH_PROCESS_LOADER = textwrap.dedent(
    """
    import json
    import sys

    class _BlockHfVideolang:
        def find_spec(self, name, path=None, target=None):
            if name == "hf_videolang" or name.startswith("hf_videolang."):
                raise ImportError(f"hf_videolang is blocked in this process ({name})")
            return None

    sys.meta_path.insert(0, _BlockHfVideolang())
    from collections.abc import Mapping

    import torch
    import transformers
    from safetensors.torch import load_file

    torch.set_num_threads(1)

    def named_tensors(value, prefix=""):
        out = {}
        if isinstance(value, torch.Tensor):
            out[prefix or "output"] = value
        elif isinstance(value, Mapping):
            for key, item in value.items():
                out.update(named_tensors(item, f"{prefix}.{key}" if prefix else str(key)))
        elif isinstance(value, (tuple, list)):
            for index, item in enumerate(value):
                out.update(named_tensors(item, f"{prefix}.{index}" if prefix else str(index)))
        return out

    failures = []
    for folder in sys.argv[1:]:
        spec = json.loads(open(folder + "/check.json").read())
        where = f"{spec['class_name']} via {spec['auto_class']}"
        try:
            model = getattr(transformers, spec["auto_class"]).from_pretrained(folder, trust_remote_code=True).eval()
            if type(model).__name__ != spec["class_name"]:
                failures.append(f"{where}: loaded {type(model).__name__}")
                continue
            if not type(model).__module__.startswith("transformers_modules"):
                failures.append(f"{where}: class comes from {type(model).__module__}, not the saved code")
                continue
            inputs = {**load_file(folder + "/inputs.safetensors"), **spec["other_inputs"]}
            expected = load_file(folder + "/expected.safetensors")
            torch.manual_seed(0)
            with torch.no_grad():
                got = named_tensors(model(**inputs))
        except Exception as error:  # report every class, not only the first that fails
            failures.append(f"{where}: {type(error).__name__}: {error}")
            continue
        if sorted(got) != sorted(expected):  # safetensors stores keys sorted
            failures.append(f"{where}: output fields {sorted(got)} != {sorted(expected)}")
            continue
        for name, want in expected.items():
            if not torch.equal(got[name], want):
                diff = (got[name].float() - want.float()).abs().max().item()
                failures.append(f"{where}: {name} differs, max |diff| {diff:.3g}")
    leaked = [name for name in sys.modules if name.startswith("hf_videolang")]
    if leaked:
        failures.append(f"hf_videolang was imported: {leaked[:3]}")
    print(json.dumps(failures))
    """
)


# ---------------------------------------------------------------------------------------------------- the mixin


class ModelTesterMixin:
    """Shared checks of an hf-videolang ``PreTrainedModel``; see the module docstring for the contract."""

    all_model_classes: ClassVar[tuple[type[PreTrainedModel], ...]] = ()
    test_attentions: ClassVar[bool] = True
    test_hidden_states: ClassVar[bool] = True
    test_torch_compile: ClassVar[bool] = True
    test_gradient_checkpointing: ClassVar[bool] = True
    test_sdpa: ClassVar[bool] = True
    test_resize_embeddings: ClassVar[bool] = True
    parameters_without_gradient: ClassVar[frozenset[str]] = frozenset()
    remote_code_entry: ClassVar[str | None] = "AutoModel"
    sdpa_atol: ClassVar[float] = 1e-5
    checkpointing_atol: ClassVar[float] = 1e-5
    compile_atol: ClassVar[float] = 1e-5

    # -------------------------------------------------------------------------------- to implement

    def prepare_config_and_inputs(self, model_class: type[PreTrainedModel]) -> tuple[PreTrainedConfig, dict]:
        """A fresh tiny config and the keyword inputs of ``model_class.forward`` (labels included)."""
        raise NotImplementedError(f"{type(self).__name__} must implement prepare_config_and_inputs(model_class)")

    def loss_weights(self, config: PreTrainedConfig, model_class: type[PreTrainedModel]) -> dict[str, float] | None:
        """``{"loss_<name>": weight}`` of every term ``loss`` sums, or None when the class returns no loss."""
        return None

    # -------------------------------------------------------------------------------- plumbing

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "model_class" in metafunc.fixturenames:
            classes = self.all_model_classes
            assert classes, f"{type(self).__name__}.all_model_classes is empty"
            metafunc.parametrize("model_class", classes, ids=[cls.__name__ for cls in classes])

    def _config_and_inputs(self, model_class: type[PreTrainedModel]) -> tuple[PreTrainedConfig, dict]:
        config, inputs = self.prepare_config_and_inputs(model_class)
        return copy.deepcopy(config), dict(inputs)

    @staticmethod
    def _build(
        model_class: type[PreTrainedModel], config: PreTrainedConfig, seed: int = 0, **kwargs
    ) -> PreTrainedModel:
        torch.manual_seed(seed)
        if kwargs:
            return model_class._from_config(copy.deepcopy(config), **kwargs)
        return model_class(copy.deepcopy(config))

    @staticmethod
    def _forward(model: nn.Module, inputs: dict, seed: int = 0, grad: bool = False, **extra) -> Any:
        """One forward with the global RNG seeded (models that sample inside ``forward`` repeat themselves)."""
        torch.manual_seed(seed)
        with torch.set_grad_enabled(grad):
            return model(**inputs, **extra)

    # -------------------------------------------------------------------------------- checks

    def test_every_trainable_parameter_gets_a_finite_nonzero_gradient(self, model_class):
        config, inputs = self._config_and_inputs(model_class)
        model = self._build(model_class, config).train()
        objective, what = _objective(self._forward(model, inputs, grad=True))
        assert objective.ndim == 0 and torch.isfinite(objective), f"{what} is {objective}"
        objective.backward()
        no_grad, zero, non_finite = [], [], []
        for name, parameter in model.named_parameters():
            if not parameter.requires_grad:
                continue
            if parameter.grad is not None and not torch.isfinite(parameter.grad).all():
                non_finite.append(name)  # never excusable
            elif _matches(name, self.parameters_without_gradient):
                continue
            elif parameter.grad is None:
                no_grad.append(name)
            elif not parameter.grad.any():
                zero.append(name)
        assert not (no_grad or zero or non_finite), (
            f"backward of the {what} of {model_class.__name__}: no gradient {no_grad}; all-zero gradient {zero}; "
            f"non-finite gradient {non_finite}. List legitimate exceptions in parameters_without_gradient."
        )

    def test_save_load_round_trip_is_bit_exact(self, model_class, tmp_path):
        config, inputs = self._config_and_inputs(model_class)
        model = self._build(model_class, config).eval()
        model.save_pretrained(tmp_path)
        files = sorted(p.name for p in tmp_path.iterdir())
        assert "model.safetensors" in files and not [f for f in files if f.endswith(".bin")], files
        reloaded, info = model_class.from_pretrained(tmp_path, output_loading_info=True)
        problems = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
        assert not problems, f"{model_class.__name__}.from_pretrained: {problems}"
        reloaded.eval()
        assert_tensors_close(reloaded.state_dict(), model.state_dict(), 0, "state_dict after save/load")
        assert_tensors_close(
            named_tensors(self._forward(reloaded, inputs)), named_tensors(self._forward(model, inputs)), 0,
            "outputs after save/load",
        )  # fmt: skip

    def test_sdpa_matches_eager(self, model_class):
        if not self.test_sdpa:
            pytest.skip("test_sdpa = False")
        assert model_class._supports_sdpa, f"{model_class.__name__} lacks _supports_sdpa; set test_sdpa = False"
        config, inputs = self._config_and_inputs(model_class)
        eager = self._build(model_class, config, attn_implementation="eager").eval()
        sdpa = self._build(model_class, config, attn_implementation="sdpa").eval()
        assert eager.config._attn_implementation == "eager" and sdpa.config._attn_implementation == "sdpa"
        sdpa.load_state_dict(eager.state_dict())
        assert_tensors_close(
            named_tensors(self._forward(sdpa, inputs)), named_tensors(self._forward(eager, inputs)), self.sdpa_atol,
            "SDPA outputs against eager",
        )  # fmt: skip

    def test_gradient_checkpointing_gives_the_same_loss_and_gradients(self, model_class):
        if not self.test_gradient_checkpointing:
            pytest.skip("test_gradient_checkpointing = False")
        assert model_class.supports_gradient_checkpointing, (
            f"{model_class.__name__}.supports_gradient_checkpointing is False; set test_gradient_checkpointing = False"
        )
        config, inputs = self._config_and_inputs(model_class)
        plain = self._build(model_class, config).train()
        checkpointed = self._build(model_class, config).train()
        checkpointed.activation_checkpointing_enable()
        layers = [m for m in checkpointed.modules() if getattr(m, "gradient_checkpointing", False)]
        assert layers, f"gradient_checkpointing_enable() switched on no layer of {model_class.__name__}"
        results = []
        for model in (plain, checkpointed):
            objective, _ = _objective(self._forward(model, inputs, grad=True))
            objective.backward()
            grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
            results.append(({"objective": objective.detach()}, grads))
        assert_tensors_close(results[1][0], results[0][0], self.checkpointing_atol, "loss with checkpointing")
        assert_tensors_close(results[1][1], results[0][1], self.checkpointing_atol, "gradients with checkpointing")

    def test_loss_is_the_weighted_sum_of_its_terms(self, model_class):
        config, inputs = self._config_and_inputs(model_class)
        weights = self.loss_weights(config, model_class)
        if weights is None:
            pytest.skip(f"loss_weights(config, {model_class.__name__}) is None: no loss to decompose")
        bad = [name for name in weights if not name.startswith("loss_")]
        assert not bad, f"loss_weights keys must be output fields named loss_<name>, got {bad}"
        output = self._forward(self._build(model_class, config).eval(), inputs)
        assert output.get("loss") is not None, (
            f"{model_class.__name__} returned no loss; include its labels in prepare_config_and_inputs"
        )
        terms = {k: v for k, v in output.items() if k.startswith("loss_")}
        unlisted = sorted(set(terms) - set(weights))
        assert not unlisted, f"output terms {unlisted} are missing from loss_weights {weights}"
        zero_but_present = sorted(k for k, w in weights.items() if w == 0 and terms.get(k) is not None)
        assert not zero_but_present, f"terms of weight 0 must be None (STYLE.md, loss pattern): {zero_but_present}"
        missing = sorted(k for k, w in weights.items() if w != 0 and terms.get(k) is None)
        assert not missing, f"terms of nonzero weight missing from the output: {missing}"
        expected = sum(w * terms[k] for k, w in weights.items() if w != 0)
        assert torch.allclose(output.loss, expected, atol=1e-6, rtol=1e-6), (
            f"loss {output.loss.item():.6g} != sum of weighted terms {float(expected):.6g} "
            f"({ {k: round(float(terms[k]), 6) for k in terms if terms[k] is not None} }, weights {weights})"
        )

    def _check_optional_outputs(self, model_class, flag: str, suffix: str, **build) -> list[tuple[str, tuple]]:
        """Run with and without ``flag``; return the ``(path, value)`` of every field named ``*<suffix>``."""
        config, inputs = self._config_and_inputs(model_class)
        model = self._build(model_class, config, **build).eval()
        plain = self._forward(model, inputs)
        shown = [p for p, name, value in named_fields(plain) if name.endswith(suffix) and value is not None]
        assert not shown, f"{model_class.__name__} returns {shown} without {flag}=True"
        output = self._forward(model, inputs, **{flag: True})
        fields = [(p, v) for p, name, v in named_fields(output) if name.endswith(suffix) and v is not None]
        assert fields, f"{model_class.__name__}(..., {flag}=True) returned no *{suffix} field"
        for path, value in fields:
            assert isinstance(value, tuple) and value, f"{path}: expected a non-empty tuple, got {type(value)}"
            bad = [i for i, t in enumerate(value) if not (isinstance(t, torch.Tensor) and t.is_floating_point())]
            assert not bad, f"{path}: entries {bad} are not floating tensors"
            assert all(torch.isfinite(t).all() for t in value), f"{path}: non-finite values"
        # The flag only adds fields: every other output is unchanged (up to the kernel: attention maps come from
        # the eager path, the plain run may use SDPA).
        assert_tensors_close(
            {k: v for k, v in named_tensors(output).items() if suffix not in k}, named_tensors(plain), self.sdpa_atol,
            f"outputs with {flag}=True (besides *{suffix})",
        )  # fmt: skip
        return fields

    def test_output_hidden_states(self, model_class):
        if not self.test_hidden_states:
            pytest.skip("test_hidden_states = False")
        for path, states in self._check_optional_outputs(model_class, "output_hidden_states", "hidden_states"):
            shapes = {tuple(t.shape) for t in states}
            assert len(shapes) == 1 and states[0].ndim == 3, f"{path}: expected one (B, L, D) shape, got {shapes}"

    def test_output_attentions(self, model_class):
        if not self.test_attentions:
            pytest.skip("test_attentions = False")
        # As in transformers, attention maps need the eager kernel (SDPA never materializes them).
        checked = self._check_optional_outputs(
            model_class, "output_attentions", "attentions", attn_implementation="eager"
        )
        for path, maps in checked:
            for i, probs in enumerate(maps):
                assert probs.ndim == 4, (
                    f"{path}[{i}]: expected (batch or groups, heads, queries, keys), got {probs.shape}"
                )
                rows = probs.sum(-1)
                assert torch.allclose(rows, torch.ones_like(rows), atol=1e-5), f"{path}[{i}]: rows do not sum to 1"

    def test_return_dict_false_gives_the_same_values_as_a_tuple(self, model_class):
        config, inputs = self._config_and_inputs(model_class)
        model = self._build(model_class, config).eval()
        as_dict = self._forward(model, inputs)
        as_tuple = self._forward(model, inputs, return_dict=False)
        assert isinstance(as_dict, ModelOutput), f"{model_class.__name__} returned {type(as_dict)}, not a ModelOutput"
        assert type(as_tuple) is tuple, f"{model_class.__name__}(..., return_dict=False) returned {type(as_tuple)}"
        first = as_dict.to_tuple()[0]
        assert_tensors_close(named_tensors(as_tuple[0]), named_tensors(first), 0, "first tuple element")
        assert len(as_tuple) == len(as_dict.to_tuple()), f"tuple of {len(as_tuple)}, dict of {len(as_dict)} fields"
        assert_tensors_close(
            dict(enumerate(named_tensors(as_tuple).values())), dict(enumerate(named_tensors(as_dict).values())), 0,
            "return_dict=False tuple against the ModelOutput",
        )  # fmt: skip

    def test_resize_token_embeddings(self, model_class):
        if not self.test_resize_embeddings:
            pytest.skip("test_resize_embeddings = False")
        config, inputs = self._config_and_inputs(model_class)
        model = self._build(model_class, config).eval()
        embeddings = model.get_input_embeddings()
        if not isinstance(embeddings, nn.Embedding):
            pytest.skip(f"{model_class.__name__} has no token embeddings ({type(embeddings).__name__})")
        old = embeddings.weight.detach().clone()
        model.resize_token_embeddings(old.shape[0] + 3)
        resized = model.get_input_embeddings()
        assert resized.weight.shape == (old.shape[0] + 3, old.shape[1])
        assert torch.equal(resized.weight[: old.shape[0]], old), "resizing changed the existing rows"
        assert model.config.get_text_config().vocab_size == old.shape[0] + 3, "config vocab_size not updated"
        ids = {k: v for k, v in inputs.items() if k.endswith("input_ids") and isinstance(v, torch.Tensor)}
        assert ids, "no *input_ids in the inputs to try the new tokens with"
        inputs = {**inputs, **{k: v.masked_fill(v == v.max(), old.shape[0] + 2) for k, v in ids.items()}}
        self._forward(model, inputs)  # the new ids embed without an index error
        model.set_input_embeddings(resized)
        assert model.get_input_embeddings() is resized

    def test_trust_remote_code_load_in_a_fresh_process_reproduces_outputs(self, tmp_path):
        """One subprocess for every class: it blocks ``import hf_videolang``, loads each folder written by
        ``save_with_remote_code`` through ``remote_code_entry`` and must reproduce the outputs bit for bit (one
        thread on both sides, so that reductions run in the same order)."""
        if self.remote_code_entry is None:
            pytest.skip(_SKIP_REMOTE)
        from hf_videolang.hub.remote_code import default_auto_class, save_with_remote_code

        folders = []
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for model_class in self.all_model_classes:
                config, inputs = self._config_and_inputs(model_class)
                model = self._build(model_class, config).eval()
                expected = named_tensors(self._forward(model, inputs))
                entry = self.remote_code_entry
                auto_class = default_auto_class(model_class) if entry == "default" else entry
                folder = tmp_path / model_class.__name__
                save_with_remote_code(model, folder, auto_class=auto_class)
                tensors = {k: v.clone().contiguous() for k, v in inputs.items() if isinstance(v, torch.Tensor)}
                others = {k: v for k, v in inputs.items() if not isinstance(v, torch.Tensor)}
                try:
                    json.dumps(others)
                except TypeError as error:
                    raise AssertionError(
                        f"non-tensor inputs must be JSON values for the remote check: {error}"
                    ) from error
                save_file(tensors, str(folder / "inputs.safetensors"))
                expected = {k: v.detach().clone().contiguous() for k, v in expected.items()}  # loss may alias loss_x
                save_file(expected, str(folder / "expected.safetensors"))
                spec = dict(class_name=model_class.__name__, auto_class=auto_class, other_inputs=others)
                (folder / "check.json").write_text(json.dumps(spec))
                folders.append(str(folder))
        finally:
            torch.set_num_threads(threads)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"), OMP_NUM_THREADS="1")
        result = subprocess.run(
            [sys.executable, "-c", _FRESH_PROCESS_LOADER, *folders], env=env, cwd=tmp_path, capture_output=True,
            text=True, timeout=240,
        )  # fmt: skip
        assert result.returncode == 0, f"fresh process crashed:\n{result.stderr[-3000:]}"
        failures = json.loads(result.stdout.strip().splitlines()[-1])
        assert not failures, "trust_remote_code load in a fresh process:\n" + "\n".join(failures)

    def _check_compiled_forward(self, model_class, backend: str):
        if not self.test_torch_compile:
            pytest.skip("test_torch_compile = False")
        config, inputs = self._config_and_inputs(model_class)
        model = self._build(model_class, config).eval()
        expected = named_tensors(self._forward(model, inputs))
        torch._dynamo.reset()
        try:
            compiled = torch.compile(model, backend=backend)
            got = named_tensors(self._forward(compiled, inputs))
        finally:
            torch._dynamo.reset()
        assert_tensors_close(got, expected, self.compile_atol, f"torch.compile(backend={backend!r}) outputs")

    def test_torch_compile_traces_the_forward(self, model_class):
        self._check_compiled_forward(model_class, "eager")

    @pytest.mark.slow
    def test_torch_compile_inductor_forward(self, model_class):
        self._check_compiled_forward(model_class, "inductor")


__all__ = ["ModelTesterMixin", "assert_tensors_close", "named_fields", "named_tensors"]
