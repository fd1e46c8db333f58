"""Visual token masks and text corruption for masked pre-training, all seeded by a ``torch.Generator``.

Visual maskers return ``bool_masked_pos``: a boolean tensor ``(B, T * h * w)`` (True = masked) flattened frame-major
(frame, then row, then column), as transformers' VideoMAE expects. ``T`` counts temporal token units (frames, or
tubelets of ``tubelet_size`` frames) and ``h x w`` is the patch grid of one unit. Every sample gets exactly
:func:`num_masked_per_frame` masked tokens in every unit, so masked batches can be packed without padding:

- :class:`TubeMasker`: one random spatial mask shared by all frames (SMAUG §3.1, "tube masking").
- :class:`RandomMasker`: an independent random mask per frame (MAC §3.1, 60 %).
- :class:`BlockMasker`: BEiT-style block-wise mask per frame (E-ViLM §4, 40 %).
- :class:`SemanticMasker`: visible tokens drawn per frame from a multinomial over importance scores, e.g. the
  attention of a teacher's class token (UMT §3.1, Eq. 1-2, 80 %).

Text: :func:`mask_tokens_mlm` (BERT 80/10/10) and :func:`mask_whole_words` (MAC §3.1: whole words, [MASK] only).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

IGNORE_INDEX = -100
"""Label of tokens that are not predicted (ignored by ``torch.nn.CrossEntropyLoss``)."""

GridSize = int | Sequence[int]
"""Patch grid of one frame: ``int`` for a square grid, or ``(h, w)``."""


# ---------------------------------------------------------------------------------------------------- counts


#: Rounding rules of the masked count, one per method's authors: ``"round"`` (``int(round(ratio * N))``) and
#: ``"floor"`` (``int(ratio * N)``, UMT's and VideoMAE's ``N_vis = N - int(N * ratio)``).
ROUNDING_RULES = ("round", "floor")


def num_masked_per_frame(mask_ratio: float, tokens_per_frame: int, rounding: str = "round") -> int:
    """Number of masked tokens in each frame.

    ``rounding="round"``: ``int(round(mask_ratio * tokens_per_frame))``; Python's ``round`` rounds halves to even,
    so ``0.5 * 5 -> 2`` and ``0.5 * 7 -> 4``, and 0.8 of a 14x14 grid masks 157 of 196 tokens (39 visible).
    ``rounding="floor"``: ``int(mask_ratio * tokens_per_frame)``, the authors' rule in UMT (``mask.py``,
    ``umt.py``: ``N_vis = N - int(N * mask_ratio)``): 0.8 of 196 masks 156, 40 stay visible.

    Raises:
        ValueError: ``mask_ratio`` is outside [0, 1), ``tokens_per_frame`` is not positive, or ``rounding`` is unknown.
    """
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
    if tokens_per_frame < 1:
        raise ValueError(f"tokens_per_frame must be positive, got {tokens_per_frame}")
    if rounding not in ROUNDING_RULES:
        raise ValueError(f"rounding must be one of {ROUNDING_RULES}, got {rounding!r}")
    if rounding == "floor":
        return int(mask_ratio * tokens_per_frame)
    return int(round(mask_ratio * tokens_per_frame))


def _as_grid(grid_size: GridSize) -> tuple[int, int]:
    if isinstance(grid_size, int):
        grid = (grid_size, grid_size)
    else:
        grid = tuple(int(g) for g in grid_size)
    if len(grid) != 2 or min(grid) < 1:
        raise ValueError(f"grid_size must be a positive int or a pair of positive ints (h, w), got {grid_size!r}")
    return grid  # type: ignore[return-value]


@dataclass(frozen=True)
class MaskingConfig:
    """Validated geometry and ratio of a visual mask.

    Args:
        num_frames: temporal token units ``T`` (frames, or tubelets).
        grid_size: patch grid ``(h, w)`` of one unit; an ``int`` means square and is stored as ``(n, n)``.
        mask_ratio: fraction of each unit's tokens that is masked, in [0, 1); at least one token per frame must stay
            visible after rounding.
    """

    num_frames: int
    grid_size: GridSize
    mask_ratio: float
    rounding: str = "round"

    def __post_init__(self) -> None:
        if not isinstance(self.num_frames, int) or self.num_frames < 1:
            raise ValueError(f"num_frames must be a positive int, got {self.num_frames!r}")
        height, width = _as_grid(self.grid_size)
        masked = num_masked_per_frame(self.mask_ratio, height * width, self.rounding)
        if masked == height * width:
            raise ValueError(
                f"mask_ratio={self.mask_ratio} masks all {masked} tokens of a {height}x{width} grid after rounding; "
                "at least one token per frame must stay visible"
            )
        # Normalized forms (frozen dataclass, hence object.__setattr__): grid as (h, w), ratio as float.
        object.__setattr__(self, "grid_size", (height, width))
        object.__setattr__(self, "mask_ratio", float(self.mask_ratio))

    @property
    def tokens_per_frame(self) -> int:
        """Tokens ``h * w`` of one frame."""
        return self.grid_size[0] * self.grid_size[1]

    @property
    def num_tokens(self) -> int:
        """Length ``T * h * w`` of a mask."""
        return self.num_frames * self.tokens_per_frame

    @property
    def num_masked_per_frame(self) -> int:
        """Masked tokens in each frame (see :func:`num_masked_per_frame`)."""
        return num_masked_per_frame(self.mask_ratio, self.tokens_per_frame, self.rounding)


def _check_generator(generator: torch.Generator | None, device: torch.device, name: str) -> None:
    if generator is not None and generator.device.type != device.type:
        raise ValueError(f"{name}: the generator is on {generator.device} but the masks are drawn on {device}")


def _topk_mask(noise: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask with True at the ``k`` largest entries of the last dimension of ``noise``."""
    mask = torch.zeros(noise.shape, dtype=torch.bool, device=noise.device)
    if k > 0:
        mask.scatter_(-1, noise.topk(k, dim=-1).indices, True)
    return mask


# ---------------------------------------------------------------------------------------------------- visual maskers


class _GridMasker:
    """Base of the maskers that need no scores: ``masker(batch_size, generator) -> (B, T*h*w)`` bool.

    ``rounding`` (``"round"`` by default, ``"floor"`` for UMT's authors) picks the masked count per frame; see
    :func:`num_masked_per_frame`.
    """

    mask_type: str = ""

    def __init__(self, num_frames: int, grid_size: GridSize, mask_ratio: float, rounding: str = "round") -> None:
        self.config = MaskingConfig(num_frames, grid_size, mask_ratio, rounding)

    @property
    def num_frames(self) -> int:
        return self.config.num_frames

    @property
    def grid_size(self) -> tuple[int, int]:
        return self.config.grid_size

    @property
    def mask_ratio(self) -> float:
        return self.config.mask_ratio

    @property
    def num_tokens(self) -> int:
        """Length ``T * h * w`` of each mask."""
        return self.config.num_tokens

    def __call__(
        self, batch_size: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """Draw ``batch_size`` masks.

        Args:
            batch_size: number of masks ``B``.
            generator: source of randomness (CPU); the same seed gives the same masks. ``None``: global torch RNG.
            device: where the returned masks live (they are drawn on the CPU).

        Returns:
            bool ``(B, T * h * w)``, True = masked, exactly ``num_masked_per_frame`` True per frame of every sample.
        """
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        _check_generator(generator, torch.device("cpu"), type(self).__name__)
        masks = self._draw(batch_size, generator)  # (B, T, h * w)
        return masks.reshape(batch_size, self.num_tokens).to(device or "cpu")

    def _draw(self, batch_size: int, generator: torch.Generator | None) -> torch.Tensor:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable settings; ``build_masker(**masker.to_dict())`` rebuilds an equal masker."""
        return {
            "mask_type": self.mask_type,
            "num_frames": self.num_frames,
            "grid_size": list(self.grid_size),
            "mask_ratio": self.mask_ratio,
            **({} if self.config.rounding == "round" else {"rounding": self.config.rounding}),
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.to_dict().items() if key != "mask_type")
        return f"{type(self).__name__}({args})"


class TubeMasker(_GridMasker):
    """Tube masking: one random spatial mask per sample, repeated over all frames.

    SMAUG §3.1 ("the spatial locations of the masked patches are the same for all sampled frames"; default ratio
    50 %, at most 65 %), after VideoMAE.

    Args:
        num_frames: temporal token units ``T``.
        grid_size: patch grid ``(h, w)`` (``int``: square).
        mask_ratio: fraction of the ``h * w`` positions masked, in [0, 1).
    """

    mask_type = "tube"

    def _draw(self, batch_size: int, generator: torch.Generator | None) -> torch.Tensor:
        noise = torch.rand(batch_size, 1, self.config.tokens_per_frame, generator=generator)
        spatial = _topk_mask(noise, self.config.num_masked_per_frame)
        return spatial.expand(batch_size, self.num_frames, -1)


class RandomMasker(_GridMasker):
    """Random masking drawn independently for every frame, with the same count in each frame.

    MAC §3.1 ("randomly mask a portion of patches in each frame", ratio 60 %; better than tube masking with divided
    space-time attention, Table 6).

    Args:
        num_frames: temporal token units ``T``.
        grid_size: patch grid ``(h, w)`` (``int``: square).
        mask_ratio: fraction of each frame's tokens masked, in [0, 1).
    """

    mask_type = "random"

    def _draw(self, batch_size: int, generator: torch.Generator | None) -> torch.Tensor:
        noise = torch.rand(batch_size, self.num_frames, self.config.tokens_per_frame, generator=generator)
        return _topk_mask(noise, self.config.num_masked_per_frame)


class BlockMasker(_GridMasker):
    """BEiT block-wise masking (BEiT Algorithm 1), per frame, with an exact masked count.

    E-ViLM §4 (Training) masks 40 % of the patches block-wise. Per frame, rectangles are placed until the target
    count is reached: each has a random area ``s ~ U(min(min_num_patches, left), min(left, max_num_patches))``
    (``left`` = tokens still to mask), a log-uniform aspect ratio in ``[min_aspect, 1 / min_aspect]`` and a uniform
    position; a rectangle is kept only if it adds between 1 and ``left`` new tokens, so the target is never exceeded.
    When ten draws in a row add nothing (the grid is crowded), the remaining tokens are taken next to the masked ones
    (random among the unmasked tokens with the most masked 4-neighbours), so the count is exact while the mask stays
    blocky.

    Args:
        num_frames: temporal token units ``T``.
        grid_size: patch grid ``(h, w)`` (``int``: square).
        mask_ratio: fraction of each frame's tokens masked, in [0, 1).
        min_num_patches: smallest block area (BEiT: 16 on a 14x14 grid; 4 suits the small grids here).
        max_num_patches: largest block area (``None``: no limit beyond the target).
        min_aspect: smallest aspect ratio; the largest is ``1 / min_aspect``.
    """

    mask_type = "block"

    def __init__(
        self,
        num_frames: int,
        grid_size: GridSize,
        mask_ratio: float,
        min_num_patches: int = 4,
        max_num_patches: int | None = None,
        min_aspect: float = 0.3,
        rounding: str = "round",
    ) -> None:
        super().__init__(num_frames, grid_size, mask_ratio, rounding)
        if min_num_patches < 1:
            raise ValueError(f"min_num_patches must be positive, got {min_num_patches}")
        if max_num_patches is not None and max_num_patches < min_num_patches:
            raise ValueError(f"max_num_patches ({max_num_patches}) must be >= min_num_patches ({min_num_patches})")
        if not 0.0 < min_aspect <= 1.0:
            raise ValueError(f"min_aspect must be in (0, 1], got {min_aspect}")
        self.min_num_patches = int(min_num_patches)
        self.max_num_patches = None if max_num_patches is None else int(max_num_patches)
        self.min_aspect = float(min_aspect)

    def _draw(self, batch_size: int, generator: torch.Generator | None) -> torch.Tensor:
        frames = [self._draw_frame(generator) for _ in range(batch_size * self.num_frames)]
        return torch.stack(frames).view(batch_size, self.num_frames, -1)

    def _draw_frame(self, generator: torch.Generator | None) -> torch.Tensor:
        height, width = self.grid_size
        target = self.config.num_masked_per_frame
        mask = torch.zeros(height, width, dtype=torch.bool)
        count, failures = 0, 0
        log_aspect = (math.log(self.min_aspect), -math.log(self.min_aspect))
        while count < target and failures < 10:
            added = self._place_block(mask, target - count, log_aspect, generator)
            count += added
            failures = 0 if added else failures + 1
        if count < target:
            self._grow(mask, target - count, generator)
        return mask.flatten()

    def _place_block(
        self, mask: torch.Tensor, left: int, log_aspect: tuple[float, float], generator: torch.Generator | None
    ) -> int:
        """Try one rectangle; mask it in place if it adds 1..``left`` tokens. Returns the number added."""
        height, width = mask.shape
        high = left if self.max_num_patches is None else min(left, self.max_num_patches)
        low = min(self.min_num_patches, high)
        u = torch.rand(4, generator=generator).tolist()
        area = low + (high - low) * u[0]
        aspect = math.exp(log_aspect[0] + (log_aspect[1] - log_aspect[0]) * u[1])
        block_h = round(math.sqrt(area * aspect))
        block_w = round(math.sqrt(area / aspect))
        if not (1 <= block_h <= height and 1 <= block_w <= width):
            return 0
        top = min(int(u[2] * (height - block_h + 1)), height - block_h)
        left_col = min(int(u[3] * (width - block_w + 1)), width - block_w)
        region = mask[top : top + block_h, left_col : left_col + block_w]
        added = int((~region).sum())
        if 0 < added <= left:
            region.fill_(True)
            return added
        return 0

    @staticmethod
    def _grow(mask: torch.Tensor, extra: int, generator: torch.Generator | None) -> None:
        """Mask ``extra`` more tokens in place, preferring those with the most masked 4-neighbours."""
        padded = torch.nn.functional.pad(mask.float()[None, None], (1, 1, 1, 1))[0, 0]
        neighbours = padded[:-2, 1:-1] + padded[2:, 1:-1] + padded[1:-1, :-2] + padded[1:-1, 2:]
        # Neighbour count dominates; the uniform noise in [0, 1) breaks ties at random.
        priority = neighbours + torch.rand(mask.shape, generator=generator)
        priority[mask] = -1.0
        flat = mask.view(-1)
        flat[priority.flatten().topk(extra).indices] = True

    def to_dict(self) -> dict[str, Any]:
        return {
            **super().to_dict(),
            "min_num_patches": self.min_num_patches,
            "max_num_patches": self.max_num_patches,
            "min_aspect": self.min_aspect,
        }


class SemanticMasker:
    """Semantic masking: visible tokens drawn from a multinomial over importance scores, frame by frame.

    UMT §3.1: the importance ``A`` of the ``L = h * w`` spatial tokens of a frame is the attention of the CLIP
    teacher's class token in its last self-attention layer, averaged over heads (Eq. 1-2; see
    :func:`cls_attention_scores`). The unmasked (visible) tokens are drawn from a multinomial distribution
    proportional to ``A`` (no softmax: the scores are only divided by their sum), without replacement, so important
    tokens are kept more often; the other tokens are masked. UMT masks 80 % of the tokens of a video and keeps
    ``N - int(N * ratio)`` per frame, as the authors' ``umt.py`` (``rounding="floor"``: 40 of 196 at 80 %).

    Args:
        mask_ratio: fraction of each frame's tokens masked, in [0, 1).
        num_frames (*optional*), grid_size (*optional*): when given, the scores must match ``(T, h * w)``.
        rounding: ``"floor"`` (UMT's authors, default) or ``"round"``; see :func:`num_masked_per_frame`.

    Calling it: ``masker(scores, generator=None)`` with ``scores`` ``(B, T, h * w)`` non-negative (any device; the
    generator must be on the same device) returns bool ``(B, T * h * w)`` on that device.
    """

    mask_type = "semantic"

    def __init__(
        self,
        mask_ratio: float,
        num_frames: int | None = None,
        grid_size: GridSize | None = None,
        rounding: str = "floor",
    ) -> None:
        num_masked_per_frame(mask_ratio, 1, rounding)  # validates the ratio and the rule
        self.mask_ratio = float(mask_ratio)
        self.rounding = rounding
        if num_frames is not None and (not isinstance(num_frames, int) or num_frames < 1):
            raise ValueError(f"num_frames must be a positive int, got {num_frames!r}")
        self.num_frames = num_frames
        self.grid_size = None if grid_size is None else _as_grid(grid_size)

    def _check_scores(self, scores: torch.Tensor) -> None:
        if not isinstance(scores, torch.Tensor) or scores.ndim != 3:
            shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
            raise ValueError(f"scores must be a tensor of shape (B, T, h * w), got {shape}")
        if self.num_frames is not None and scores.shape[1] != self.num_frames:
            raise ValueError(f"scores have {scores.shape[1]} frames, the masker expects num_frames={self.num_frames}")
        if self.grid_size is not None and scores.shape[2] != self.grid_size[0] * self.grid_size[1]:
            raise ValueError(
                f"scores have {scores.shape[2]} tokens per frame, the masker expects a "
                f"{self.grid_size[0]}x{self.grid_size[1]} grid"
            )
        if scores.shape[2] < 1:
            raise ValueError("scores have no tokens per frame")
        if not torch.isfinite(scores).all() or (scores < 0).any():
            raise ValueError("scores must be finite and non-negative (e.g. attention probabilities)")

    def __call__(self, scores: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw one mask per sample from its scores.

        Args:
            scores: ``(B, T, h * w)`` non-negative importance of each token (e.g. :func:`cls_attention_scores`).
            generator: on ``scores.device``; the same seed gives the same masks. ``None``: global torch RNG.

        Returns:
            bool ``(B, T * h * w)`` on ``scores.device``, True = masked; exactly ``num_masked_per_frame`` per frame.
        """
        self._check_scores(scores)
        _check_generator(generator, scores.device, type(self).__name__)
        batch, frames, tokens = scores.shape
        num_visible = tokens - num_masked_per_frame(self.mask_ratio, tokens, self.rounding)
        if num_visible == 0:
            raise ValueError(f"mask_ratio={self.mask_ratio} masks all {tokens} tokens of a frame after rounding")
        probs = scores.detach().reshape(batch * frames, tokens).float()
        # A frame with all-zero scores carries no preference: sample it uniformly.
        probs = torch.where(probs.sum(-1, keepdim=True) > 0, probs, torch.ones_like(probs))
        probs = probs / probs.sum(-1, keepdim=True)
        # Sampling without replacement needs `num_visible` non-zero entries; a tiny floor keeps zero-score tokens
        # drawable (last) without changing the distribution of the others measurably.
        probs = probs.clamp_min(1e-12)
        visible = torch.multinomial(probs, num_visible, replacement=False, generator=generator)
        mask = torch.ones(batch * frames, tokens, dtype=torch.bool, device=scores.device)
        mask.scatter_(-1, visible, False)
        return mask.view(batch, frames * tokens)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable settings; ``build_masker(**masker.to_dict())`` rebuilds an equal masker."""
        return {
            "mask_type": self.mask_type,
            "mask_ratio": self.mask_ratio,
            "num_frames": self.num_frames,
            "grid_size": None if self.grid_size is None else list(self.grid_size),
            "rounding": self.rounding,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mask_ratio={self.mask_ratio!r})"


def cls_attention_scores(attention_probs: torch.Tensor, num_frames: int, num_prefix_tokens: int = 1) -> torch.Tensor:
    """Semantic importance of the spatial tokens of each frame (UMT §3.1, Eq. 1-2).

    Args:
        attention_probs: the teacher's last-layer attention probabilities ``(B * T, heads, L, L)`` of frames encoded
            one by one, where the first ``num_prefix_tokens`` tokens are the class token (and any other prefix).
        num_frames: ``T``, to split the frame batch back into videos (frames of a video are consecutive).
        num_prefix_tokens: number of non-spatial tokens at the start of the sequence.

    Returns:
        ``(B, T, L - num_prefix_tokens)``: the class token's attention to every spatial token, averaged over heads.
    """
    if attention_probs.ndim != 4 or attention_probs.shape[0] % num_frames:
        raise ValueError(
            f"attention_probs must have shape (B * T, heads, L, L) with B * T a multiple of num_frames={num_frames}, "
            f"got {tuple(attention_probs.shape)}"
        )
    scores = attention_probs[:, :, 0, num_prefix_tokens:].mean(dim=1)
    return scores.reshape(-1, num_frames, scores.shape[-1])


_MASKERS: dict[str, type] = {
    "tube": TubeMasker,
    "random": RandomMasker,
    "block": BlockMasker,
    "semantic": SemanticMasker,
}

Masker = TubeMasker | RandomMasker | BlockMasker | SemanticMasker


def build_masker(mask_type: str, **kwargs: Any) -> Masker:
    """Build a visual masker by name.

    Args:
        mask_type: ``"tube"``, ``"random"``, ``"block"`` or ``"semantic"``.
        **kwargs: the masker's constructor arguments (``num_frames``, ``grid_size``, ``mask_ratio``, ...).

    Raises:
        ValueError: unknown ``mask_type``, or an argument the masker does not take.
    """
    if mask_type not in _MASKERS:
        raise ValueError(f"unknown mask_type {mask_type!r}; expected one of {sorted(_MASKERS)}")
    cls = _MASKERS[mask_type]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unexpected = sorted(set(kwargs) - accepted)
    if unexpected:
        raise ValueError(
            f"mask_type={mask_type!r} ({cls.__name__}) does not take {unexpected}; it takes {sorted(accepted)}"
        )
    return cls(**kwargs)


# ---------------------------------------------------------------------------------------------------- text


def _check_text_inputs(
    input_ids: torch.Tensor, special_tokens_mask: torch.Tensor, attention_mask: torch.Tensor | None, probability: float
) -> torch.Tensor:
    """Validate and return the bool mask of tokens that may never be masked (special tokens and padding)."""
    if not isinstance(input_ids, torch.Tensor) or input_ids.ndim != 2:
        raise ValueError(f"input_ids must be a (B, L) tensor, got {getattr(input_ids, 'shape', type(input_ids))}")
    if special_tokens_mask.shape != input_ids.shape:
        raise ValueError(
            f"special_tokens_mask shape {tuple(special_tokens_mask.shape)} differs from input_ids "
            f"{tuple(input_ids.shape)}"
        )
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"probability must be in [0, 1], got {probability}")
    protected = special_tokens_mask.bool()
    if attention_mask is not None:
        if attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"attention_mask shape {tuple(attention_mask.shape)} differs from input_ids {tuple(input_ids.shape)}"
            )
        protected = protected | (attention_mask == 0)
    return protected


def _generator_device(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def _bernoulli(
    shape: torch.Size | tuple[int, ...], p: float, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    # Drawn on the generator's device (CPU by default), then moved: works for CUDA inputs with a CPU generator.
    return (torch.rand(shape, generator=generator, device=_generator_device(generator)) < p).to(device)


def mask_tokens_mlm(
    input_ids: torch.Tensor,
    special_tokens_mask: torch.Tensor,
    mask_token_id: int,
    vocab_size: int,
    probability: float = 0.15,
    generator: torch.Generator | None = None,
    attention_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masked-language-model corruption (BERT §3.1): select tokens, then 80 % [MASK], 10 % random, 10 % kept.

    Each non-special token is selected independently with ``probability`` (15 % in ClipBERT, SMAUG and E-ViLM; 50 %
    in UMT stage 2). Random replacements are uniform over ``[0, vocab_size)``, as in BERT.

    Args:
        input_ids: ``(B, L)`` token ids (not modified).
        special_tokens_mask: ``(B, L)``, nonzero for [CLS] / [SEP] / [PAD] and other tokens never to mask.
        mask_token_id: id of [MASK].
        vocab_size: number of token ids (``len(tokenizer)``).
        probability: selection probability per token.
        generator: source of randomness; the same seed gives the same corruption.
        attention_mask: optional ``(B, L)``; positions with 0 (padding) are never masked either.

    Returns:
        ``(masked_input_ids, labels)``, both ``(B, L)`` int64: the corrupted ids, and the original id at selected
        positions and -100 everywhere else.
    """
    protected = _check_text_inputs(input_ids, special_tokens_mask, attention_mask, probability)
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be positive, got {vocab_size}")
    shape, device = input_ids.shape, input_ids.device
    selected = _bernoulli(shape, probability, generator, device) & ~protected
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    # One uniform per token decides the replacement: [0, 0.8) -> [MASK], [0.8, 0.9) -> random, [0.9, 1) -> kept.
    gen_device = _generator_device(generator)
    u = torch.rand(shape, generator=generator, device=gen_device).to(device)
    random_ids = torch.randint(vocab_size, shape, generator=generator, device=gen_device).to(device)
    masked = input_ids.clone()
    masked[selected & (u < 0.8)] = mask_token_id
    use_random = selected & (u >= 0.8) & (u < 0.9)
    masked[use_random] = random_ids[use_random].to(masked.dtype)
    return masked, labels


def _word_ids_tensor(word_ids: torch.Tensor | Sequence[Sequence[int | None]], shape: torch.Size) -> torch.Tensor:
    """``word_ids`` as a ``(B, L)`` int64 tensor with -1 where a token belongs to no word."""
    if isinstance(word_ids, torch.Tensor):
        tensor = word_ids.long()
    else:
        tensor = torch.tensor([[-1 if w is None else int(w) for w in row] for row in word_ids], dtype=torch.long)
    if tuple(tensor.shape) != tuple(shape):
        raise ValueError(f"word_ids shape {tuple(tensor.shape)} differs from input_ids {tuple(shape)}")
    return tensor


def _word_runs(word_ids: torch.Tensor) -> torch.Tensor:
    """Renumber words as runs of consecutive tokens with the same word id: ``(B, L)`` run index, -1 outside words.

    Word ids of a fast tokenizer restart at 0 in the second sequence of a pair; runs are unique per row either way.
    """
    in_word = word_ids >= 0
    previous = torch.nn.functional.pad(word_ids, (1, 0), value=-1)[:, :-1]
    starts = in_word & (word_ids != previous)
    runs = starts.long().cumsum(dim=1) - 1
    return torch.where(in_word, runs, torch.full_like(runs, -1))


def mask_whole_words(
    input_ids: torch.Tensor,
    word_ids: torch.Tensor | Sequence[Sequence[int | None]],
    special_tokens_mask: torch.Tensor,
    mask_token_id: int,
    probability: float = 0.15,
    generator: torch.Generator | None = None,
    attention_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Whole-word masking with [MASK] only (MAC §3.1, "Text Masking", after BERT-wwm).

    Each word is selected independently with ``probability`` (15 % in MAC), and every sub-token of a selected word is
    replaced by [MASK] (no random or kept tokens, "to avoid random noise"; all sub-tokens, "to avoid information
    leakage"). A word that contains a special token is never selected.

    Args:
        input_ids: ``(B, L)`` token ids (not modified).
        word_ids: ``(B, L)`` word index of every token, -1 (or ``None``) for tokens outside words; e.g.
            ``[encoding.word_ids(i) for i in range(B)]`` of a fast tokenizer, or :func:`word_ids_from_wordpieces`.
        special_tokens_mask: ``(B, L)``, nonzero for tokens never to mask.
        mask_token_id: id of [MASK].
        probability: selection probability per word.
        generator: source of randomness; the same seed gives the same masks.
        attention_mask: optional ``(B, L)``; positions with 0 (padding) are never masked either.

    Returns:
        ``(masked_input_ids, labels)``, both ``(B, L)`` int64; labels hold the original id on masked tokens, -100
        elsewhere.
    """
    protected = _check_text_inputs(input_ids, special_tokens_mask, attention_mask, probability)
    runs = _word_runs(_word_ids_tensor(word_ids, input_ids.shape).to(input_ids.device))
    batch, length = input_ids.shape
    # One slot per word run; slot `length` (a run index is always < length) collects the tokens outside words.
    slots = torch.where(runs >= 0, runs, torch.full_like(runs, length))
    # A word with a protected token is never chosen, so that no word is ever split.
    protected_count = torch.zeros(batch, length + 1, dtype=torch.long, device=input_ids.device)
    protected_count.scatter_add_(1, slots, protected.long())
    chosen_words = _bernoulli((batch, length + 1), probability, generator, input_ids.device) & (protected_count == 0)
    chosen_words[:, length] = False
    selected = chosen_words.gather(1, slots)
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    masked = input_ids.masked_fill(selected, mask_token_id)
    return masked, labels


def word_ids_from_wordpieces(
    input_ids: torch.Tensor,
    tokenizer: Any,
    special_tokens_mask: torch.Tensor | None = None,
    continuation_prefix: str = "##",
) -> torch.Tensor:
    """Word ids from the WordPiece convention, for tokenizers without ``word_ids()`` (slow tokenizers).

    A token starting with ``continuation_prefix`` continues the previous word; any other token starts a new one.

    Args:
        input_ids: ``(B, L)`` token ids.
        tokenizer: anything with ``convert_ids_to_tokens`` (and ``all_special_ids`` when no mask is given).
        special_tokens_mask: ``(B, L)``, nonzero for special / padding tokens (default: ``tokenizer.all_special_ids``).
        continuation_prefix: prefix of word-continuation pieces (``"##"`` for BERT).

    Returns:
        ``(B, L)`` int64 word index per row (0, 1, ...), -1 for special tokens.
    """
    if special_tokens_mask is None:
        special_ids = torch.tensor(sorted(tokenizer.all_special_ids), dtype=input_ids.dtype, device=input_ids.device)
        special_tokens_mask = torch.isin(input_ids, special_ids)
    special = special_tokens_mask.bool().tolist()
    rows = []
    for ids, row_special in zip(input_ids.tolist(), special):
        word, row = -1, []
        for token, is_special in zip(tokenizer.convert_ids_to_tokens(ids), row_special):
            if is_special:
                row.append(-1)
                continue
            if not (token.startswith(continuation_prefix) and word >= 0 and row and row[-1] >= 0):
                word += 1
            row.append(word)
        rows.append(row)
    return torch.tensor(rows, dtype=torch.long, device=input_ids.device)
