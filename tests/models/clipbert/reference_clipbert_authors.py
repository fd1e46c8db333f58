# ClipBERT (src/modeling/modeling.py, grid_feat.py, e2e_model.py): MIT License, Copyright (c) 2021 Jie Lei.
#   https://github.com/jayleicn/ClipBERT
# BERT layers (the authors' src/modeling/transformers.py, a copy of transformers 3.x modeling_bert.py):
#   Copyright 2018 The Google AI Language Team Authors and The HuggingFace Inc. team.
#   Copyright (c) 2018, NVIDIA CORPORATION. Licensed under the Apache License, Version 2.0.
# ResNet pieces (detectron2/layers/batch_norm.py, wrappers.py, modeling/backbone/resnet.py):
#   Copyright (c) Facebook, Inc. and its affiliates. Licensed under the Apache License, Version 2.0.
"""The authors' ClipBERT, vendored for the parity test of the converter (``test_convert_clipbert.py``).

Adapted from jayleicn/ClipBERT@HEAD (``src/modeling/{modeling,grid_feat,e2e_model,transformers}.py``) and
facebookresearch/detectron2@HEAD (``FrozenBatchNorm2d``, ``Conv2d``, ``BasicStem``, ``BottleneckBlock``, ``ResNet``).
Module and parameter names are the authors' exactly, so ``ClipBert(...).state_dict()`` has the key layout of their
checkpoints (``cnn.feature.backbone.res2.0.conv1.norm.running_var``, ``transformer.bert.encoder.layer.0...``).

What is stubbed, and why the stub is faithful:

- **detectron2** (not installable here). ``GridFeatBackbone`` builds ``GeneralizedRCNN`` from ``R-50-grid.yaml`` but
  only calls ``feature.backbone(x)`` and ``feature.roi_heads.get_conv5_features(...)``, which for the grid-feat
  ``AttributeStandardROIHeads`` returns ``features["res5"]`` unchanged (``grid_feats/roi_heads.py``). The backbone is
  detectron2's ``ResNet`` with ``OUT_FEATURES=["res5"]``, ``NORM="FrozenBN"``, ``STRIDE_IN_1X1=True`` (the MSRA
  default), ``RES5_DILATION=1`` (forced by ``grid_feat.py``), groups 1: rebuilt below from detectron2's own code
  (``FrozenBatchNorm2d`` with its ``weight/bias/running_mean/running_var`` buffers and eps 1e-5, ``Conv2d`` = conv ->
  norm, ``BasicStem`` = 7x7/2 conv -> ReLU -> 3x3/2 max-pool, ``BottleneckBlock`` = 1x1 (stride) -> 3x3 -> 1x1 plus a
  projection shortcut when the width changes, ReLU after the sum). Widths are parameters so that tests run a tiny
  ResNet; the R-50 layout is ``stem=64, res2..res5 = 256..2048, bottleneck = out / 4, depths 3-4-6-3``. The RPN and
  the box/attribute heads of ``GeneralizedRCNN`` never run in ClipBERT; two stand-in layers
  (``proposal_generator.rpn_head.conv``, ``roi_heads.box_predictor.cls_score``) keep such keys in the state dict so
  that the converter's "ignored" report is exercised.
- **apex** ``FusedLayerNorm`` -> ``torch.nn.LayerNorm`` (the same function).
- **transformers 3.x / horovod**: the BERT layers are re-typed without the ``PreTrainedModel`` plumbing (head
  pruning, TF loading); ``init_weights`` (normal 0.02, LayerNorm 1/0, zero biases) and the tying of the MLM decoder
  to the word embeddings that ``PreTrainedModel.init_weights`` does are done by hand. The extended attention mask is
  theirs: ``(1 - mask) * -10000``.
- Head pruning, ``output_attentions`` / ``output_hidden_states`` and the unused decoder (cross-attention) branch of
  their BERT copy are left out: ClipBERT never uses them.

Input: RGB frames, already normalized as their ``ImageNorm`` does (0-255 minus ``img_pixel_mean``, std 1); the model
swaps RGB -> BGR itself, as ``GridFeatBackbone.forward`` does.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

# ---------------------------------------------------------------------------------------------------- detectron2


class FrozenBatchNorm2d(nn.Module):
    """detectron2.layers.FrozenBatchNorm2d: fixed affine transform from buffers (no ``num_batches_tracked`` kept)."""

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_features, self.eps = num_features, eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features) - eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        bias = self.bias - self.running_mean * scale
        return x * scale.reshape(1, -1, 1, 1) + bias.reshape(1, -1, 1, 1)


class Conv2d(nn.Conv2d):
    """detectron2.layers.Conv2d: ``nn.Conv2d`` followed by an optional ``norm`` (and activation, unused here)."""

    def __init__(self, *args, norm: nn.Module | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        return self.norm(x) if self.norm is not None else x


class BasicStem(nn.Module):
    def __init__(self, in_channels: int = 3, out_channels: int = 64) -> None:
        super().__init__()
        self.conv1 = Conv2d(in_channels, out_channels, kernel_size=7, stride=2, padding=3, bias=False,
                            norm=FrozenBatchNorm2d(out_channels))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu_(self.conv1(x))
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)


class BottleneckBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, *, bottleneck_channels: int, stride: int = 1,
                 stride_in_1x1: bool = True, dilation: int = 1) -> None:  # fmt: skip
        super().__init__()
        if in_channels != out_channels:
            self.shortcut = Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False,
                                   norm=FrozenBatchNorm2d(out_channels))  # fmt: skip
        else:
            self.shortcut = None
        # The original MSRA ResNet models have stride in the first 1x1 conv.
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = Conv2d(in_channels, bottleneck_channels, kernel_size=1, stride=stride_1x1, bias=False,
                            norm=FrozenBatchNorm2d(bottleneck_channels))  # fmt: skip
        self.conv2 = Conv2d(bottleneck_channels, bottleneck_channels, kernel_size=3, stride=stride_3x3,
                            padding=dilation, bias=False, dilation=dilation,
                            norm=FrozenBatchNorm2d(bottleneck_channels))  # fmt: skip
        self.conv3 = Conv2d(bottleneck_channels, out_channels, kernel_size=1, bias=False,
                            norm=FrozenBatchNorm2d(out_channels))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu_(self.conv1(x))
        out = F.relu_(self.conv2(out))
        out = self.conv3(out)
        out = out + (self.shortcut(x) if self.shortcut is not None else x)
        return F.relu_(out)


class ResNet(nn.Module):
    """detectron2 ResNet with ``OUT_FEATURES=["res5"]``: stem, then stages ``res2``..``res5`` (res2 without stride)."""

    def __init__(self, stem_channels: int, stage_channels: list[int], depths: list[int]) -> None:
        super().__init__()
        self.stem = BasicStem(3, stem_channels)
        self.stage_names = []
        in_channels = stem_channels
        for index, (out_channels, depth) in enumerate(zip(stage_channels, depths)):
            first_stride = 1 if index == 0 else 2
            blocks = []
            for block in range(depth):
                blocks.append(BottleneckBlock(in_channels, out_channels, bottleneck_channels=out_channels // 4,
                                              stride=first_stride if block == 0 else 1, stride_in_1x1=True))
                in_channels = out_channels
            name = f"res{index + 2}"
            self.add_module(name, nn.Sequential(*blocks))
            self.stage_names.append(name)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.stem(x)
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return {"res5": x}


class _GridFeatROIHeads(nn.Module):
    """AttributeStandardROIHeads, as far as ClipBERT uses it: ``get_conv5_features`` returns ``res5`` as is."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.box_predictor = nn.Module()
        self.box_predictor.cls_score = nn.Linear(channels, 3)  # stands for the never-run Visual Genome heads

    def get_conv5_features(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return features["res5"]


class GeneralizedRCNN(nn.Module):
    def __init__(self, stem_channels: int, stage_channels: list[int], depths: list[int]) -> None:
        super().__init__()
        self.backbone = ResNet(stem_channels, stage_channels, depths)
        self.proposal_generator = nn.Module()
        self.proposal_generator.rpn_head = nn.Module()
        self.proposal_generator.rpn_head.conv = nn.Conv2d(stage_channels[-1], 4, kernel_size=3, padding=1)
        self.roi_heads = _GridFeatROIHeads(stage_channels[-1])


# ---------------------------------------------------------------------------------------------------- grid_feat.py


class GridFeatBackbone(nn.Module):
    def __init__(self, config, stem_channels: int, stage_channels: list[int], depths: list[int]) -> None:
        super().__init__()
        self.feature = GeneralizedRCNN(stem_channels, stage_channels, depths)
        self.grid_encoder = nn.Sequential(
            nn.Conv2d(config.backbone_channel_in_size, config.hidden_size, kernel_size=3, stride=1, padding=1,
                      bias=False),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.ReLU(inplace=True),
        )  # fmt: skip
        self.input_format = "BGR"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bsz, n_frms, c, h, w = x.shape
        x = x.view(bsz * n_frms, c, h, w)
        if self.input_format == "BGR":
            x = x[:, [2, 1, 0], :, :]  # RGB->BGR, images are read in as RGB by default
        res5_features = self.feature.backbone(x)
        grid_feat_outputs = self.feature.roi_heads.get_conv5_features(res5_features)
        grid = self.grid_encoder(grid_feat_outputs)  # (B * n_frm, C, H, W)
        new_c, new_h, new_w = grid.shape[-3:]
        grid = grid.view(bsz, n_frms, new_c, new_h, new_w)
        return grid.permute(0, 1, 3, 4, 2)  # (B, n_frm, H, W, C)


# ---------------------------------------------------------------------------------------------------- BERT


def gelu(x: torch.Tensor) -> torch.Tensor:
    return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


class BertEmbeddings(nn.Module):
    def __init__(self, config) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        seq_length = input_ids.shape[1]
        position_ids = torch.arange(seq_length, dtype=torch.long, device=input_ids.device)[None].expand_as(input_ids)
        token_type_ids = torch.zeros_like(input_ids)
        embeddings = (self.word_embeddings(input_ids) + self.position_embeddings(position_ids)
                      + self.token_type_embeddings(token_type_ids))  # fmt: skip
        return self.dropout(self.LayerNorm(embeddings))


class BertSelfAttention(nn.Module):
    def __init__(self, config) -> None:
        super().__init__()
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = config.hidden_size // config.num_attention_heads
        self.all_head_size = self.num_attention_heads * self.attention_head_size
        self.query = nn.Linear(config.hidden_size, self.all_head_size)
        self.key = nn.Linear(config.hidden_size, self.all_head_size)
        self.value = nn.Linear(config.hidden_size, self.all_head_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def transpose_for_scores(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(*x.shape[:-1], self.num_attention_heads, self.attention_head_size).permute(0, 2, 1, 3)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        query = self.transpose_for_scores(self.query(hidden_states))
        key = self.transpose_for_scores(self.key(hidden_states))
        value = self.transpose_for_scores(self.value(hidden_states))
        scores = torch.matmul(query, key.transpose(-1, -2)) / math.sqrt(self.attention_head_size)
        probs = self.dropout(nn.Softmax(dim=-1)(scores + attention_mask))
        context = torch.matmul(probs, value).permute(0, 2, 1, 3).contiguous()
        return context.view(*context.shape[:-2], self.all_head_size)


class BertSelfOutput(nn.Module):
    def __init__(self, config) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


class BertAttention(nn.Module):
    def __init__(self, config) -> None:
        super().__init__()
        self.self = BertSelfAttention(config)
        self.output = BertSelfOutput(config)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(hidden_states, attention_mask), hidden_states)


class BertIntermediate(nn.Module):
    def __init__(self, config) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return gelu(self.dense(hidden_states))  # hidden_act "gelu" (base_model.json): the erf form


class BertOutput(nn.Module):
    def __init__(self, config) -> None:
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


class BertLayer(nn.Module):
    def __init__(self, config) -> None:
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        attention_output = self.attention(hidden_states, attention_mask)
        return self.output(self.intermediate(attention_output), attention_output)


class BertEncoder(nn.Module):
    def __init__(self, config) -> None:
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(config) for _ in range(config.num_hidden_layers)])

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor]:
        for layer in self.layer:
            hidden_states = layer(hidden_states, attention_mask)
        return (hidden_states,)


class BertPooler(nn.Module):
    def __init__(self, config) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(hidden_states[:, 0]))


class BertPredictionHeadTransform(nn.Module):
    def __init__(self, config) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(gelu(self.dense(hidden_states)))


class BertLMPredictionHead(nn.Module):
    def __init__(self, config) -> None:
        super().__init__()
        self.transform = BertPredictionHeadTransform(config)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.decoder.bias = self.bias

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(hidden_states))


class BertPreTrainingHeads(nn.Module):
    def __init__(self, config) -> None:
        super().__init__()
        self.predictions = BertLMPredictionHead(config)
        self.seq_relationship = nn.Linear(config.hidden_size, 2)

    def forward(self, sequence_output: torch.Tensor, pooled_output: torch.Tensor):
        return self.predictions(sequence_output), self.seq_relationship(pooled_output)


def init_bert_weights(module: nn.Module, initializer_range: float) -> None:
    """``BertPreTrainedModel._init_weights`` applied to every submodule (their ``init_weights``)."""
    for sub in module.modules():
        if isinstance(sub, (nn.Linear, nn.Embedding)):
            sub.weight.data.normal_(mean=0.0, std=initializer_range)
        elif isinstance(sub, nn.LayerNorm):
            sub.bias.data.zero_()
            sub.weight.data.fill_(1.0)
        if isinstance(sub, nn.Linear) and sub.bias is not None:
            sub.bias.data.zero_()


# ---------------------------------------------------------------------------------------------------- modeling.py


class VisualInputEmbedding(nn.Module):
    def __init__(self, config) -> None:
        super().__init__()
        self.config = config
        # Declared but never used in forward (kept: it is in their checkpoints).
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.row_position_embeddings = nn.Embedding(config.max_grid_row_position_embeddings, config.hidden_size)
        self.col_position_embeddings = nn.Embedding(config.max_grid_col_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(1, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        bsz, _, _, _, hsz = grid.shape
        grid = grid.mean(1)  # temporal mean pooling, (B, H, W, d)
        grid = self.add_2d_positional_embeddings(grid)
        visual_tokens = grid.view(bsz, -1, hsz)  # (B, H*W, d)
        if getattr(self.config, "pixel_random_sampling_size", 0) > 0 and self.training:
            raise NotImplementedError("the parity test runs in eval mode (their sampling draws from numpy)")
        token_type_ids = torch.zeros(visual_tokens.shape[:-1], dtype=torch.long, device=visual_tokens.device)
        embeddings = visual_tokens + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(embeddings))

    def add_2d_positional_embeddings(self, grid: torch.Tensor) -> torch.Tensor:
        height, width, hsz = grid.shape[-3:]
        row = self.row_position_embeddings(torch.arange(height, dtype=torch.long, device=grid.device))
        grid = grid + row.view(*(1,) * (grid.dim() - 3), height, 1, hsz)
        col = self.col_position_embeddings(torch.arange(width, dtype=torch.long, device=grid.device))
        return grid + col.view(*(1,) * (grid.dim() - 3), 1, width, hsz)


class ClipBertBaseModel(nn.Module):
    def __init__(self, config) -> None:
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.visual_embeddings = VisualInputEmbedding(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config)

    def forward(self, text_input_ids, visual_inputs, attention_mask):
        text_embedding_output = self.embeddings(input_ids=text_input_ids)
        visual_embedding_output = self.visual_embeddings(visual_inputs)
        visual_attention_mask = attention_mask.new_ones(visual_embedding_output.shape[:2])
        attention_mask = torch.cat([attention_mask, visual_attention_mask], dim=-1)
        embedding_output = torch.cat([text_embedding_output, visual_embedding_output], dim=1)
        # PreTrainedModel.get_extended_attention_mask of transformers 3.x
        extended_attention_mask = (1.0 - attention_mask[:, None, None, :].float()) * -10000.0
        sequence_output = self.encoder(embedding_output, attention_mask=extended_attention_mask)[0]
        return sequence_output, self.pooler(sequence_output)


class ClipBertForPreTraining(nn.Module):
    def __init__(self, config) -> None:
        super().__init__()
        self.config = config
        self.bert = ClipBertBaseModel(config)
        self.cls = BertPreTrainingHeads(config)
        init_bert_weights(self, config.initializer_range)
        self.cls.predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight  # tie_weights

    def forward(self, text_input_ids, visual_inputs, text_input_mask, mlm_labels=None, itm_labels=None):
        sequence_output, pooled_output = self.bert(text_input_ids=text_input_ids, visual_inputs=visual_inputs,
                                                   attention_mask=text_input_mask)  # fmt: skip
        txt_len = text_input_mask.shape[1]
        prediction_scores, seq_relationship_score = self.cls(sequence_output[:, :txt_len], pooled_output)
        return dict(mlm_scores=prediction_scores, itm_scores=seq_relationship_score)


class ClipBertForSequenceClassification(nn.Module):
    """Open-ended QA (``run_video_qa.py``, ``loss_type="ce"``) and, with ``num_labels=2``, the retrieval head of
    ``ClipBertForVideoTextRetrieval`` (the same layers and forward)."""

    def __init__(self, config) -> None:
        super().__init__()
        self.config = config
        self.bert = ClipBertBaseModel(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Sequential(
            nn.Linear(config.hidden_size, config.hidden_size * 2),
            nn.ReLU(True),
            nn.Linear(config.hidden_size * 2, config.num_labels),
        )
        init_bert_weights(self, config.initializer_range)

    def forward(self, text_input_ids, visual_inputs, text_input_mask, labels=None):
        pooled_output = self.bert(text_input_ids=text_input_ids, visual_inputs=visual_inputs,
                                  attention_mask=text_input_mask)[1]  # fmt: skip
        return dict(logits=self.classifier(self.dropout(pooled_output)))


ClipBertForVideoTextRetrieval = ClipBertForSequenceClassification


# ---------------------------------------------------------------------------------------------------- e2e_model.py


class ClipBert(nn.Module):
    """``cnn`` (GridFeatBackbone) + ``transformer``; ``n_examples_list`` repeats each clip's features per text."""

    def __init__(self, config, transformer_cls, stem_channels: int, stage_channels: list[int],
                 depths: list[int]) -> None:  # fmt: skip
        super().__init__()
        self.config = config
        self.cnn = GridFeatBackbone(config, stem_channels, stage_channels, depths)
        self.transformer = transformer_cls(config)

    def forward(self, batch: dict) -> dict:
        repeat_counts = batch.pop("n_examples_list")
        visual_features = self.cnn(batch["visual_inputs"])
        batch["visual_inputs"] = torch.cat(
            [feature[None].expand(count, *feature.shape) for feature, count in zip(visual_features, repeat_counts)]
        )  # data_utils.repeat_tensor_rows
        return self.transformer(**batch)


def randomize_frozen_batch_norms(model: nn.Module, generator: torch.Generator) -> None:
    """Give every FrozenBatchNorm2d random statistics and affine terms (their init is the identity, which would not
    test the BN conversion)."""
    for module in model.modules():
        if isinstance(module, FrozenBatchNorm2d):
            n = module.num_features
            module.weight.copy_(1 + 0.2 * torch.randn(n, generator=generator))
            module.bias.copy_(0.2 * torch.randn(n, generator=generator))
            module.running_mean.copy_(0.2 * torch.randn(n, generator=generator))
            module.running_var.copy_(0.5 + torch.rand(n, generator=generator))


def authors_config(**overrides) -> SimpleNamespace:
    """Their ``base_model.json`` fields (a BertConfig), plus the downstream ones ``setup_model`` adds."""
    settings = dict(
        max_temporal_position_embeddings=100, backbone_channel_in_size=2048, max_grid_row_position_embeddings=100,
        max_grid_col_position_embeddings=100, attention_probs_dropout_prob=0.1, hidden_act="gelu",
        hidden_dropout_prob=0.1, hidden_size=768, initializer_range=0.02, intermediate_size=3072,
        layer_norm_eps=1e-12, max_position_embeddings=512, num_attention_heads=12, num_hidden_layers=12,
        pad_token_id=0, type_vocab_size=2, vocab_size=30522, num_labels=2, pixel_random_sampling_size=0,
    )  # fmt: skip
    settings.update(overrides)
    return SimpleNamespace(**settings)


class ImageNorm:
    """``src/datasets/data_utils.ImageNorm`` on the CPU (theirs moves mean / std to CUDA): ``(B, N, 3, H, W)`` frames
    on the 0-255 scale minus ``img_pixel_mean``, divided by ``img_pixel_std`` (1 in every released config)."""

    def __init__(self, mean=(123.675, 116.28, 103.53), std=(1.0, 1.0, 1.0)) -> None:
        self.mean = torch.tensor(mean).view(1, 1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 1, 3, 1, 1)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if torch.max(img) > 1 and self.mean.max() <= 1:
            img.div_(255.0)
        return img.sub_(self.mean).div_(self.std)
