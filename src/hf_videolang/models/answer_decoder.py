"""Open-ended video QA by answer generation, shared by UMT and SMAUG (ALBEF's ``rank_answer``, which both authors'
QA models use: UMT's ``UMT_QA``, Singularity's ``model_vqa``).

A BERT answer decoder reads the fused question states through cross-attention and scores each answer of
``config.answer_list`` by the log-likelihood of its tokens; the answers' tokens live in ``config.answer_token_ids``
so that a saved model ranks, and the pipeline names, the same answers.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import nn

# Logit of the answers that the first-token pre-selection drops; finite so that averaging clips stays finite, and
# representable in float16.
UNRANKED_ANSWER_LOGIT = -1e4


class AnswerDecoderMixin:
    """Answer list, decoder initialization and ranking for a `PreTrainedModel` with an `answer_decoder`
    (`BertLMHeadModel` with cross-attention).

    A model supplies :meth:`_answer_decoder_sources` (the text embeddings and the multimodal encoder layers the
    decoder starts from) and may override :meth:`tokenize_answer_list` and ``count_first_token_twice``.
    """

    answer_decoder: nn.Module
    # UMT's authors' score adds log p(first token) to the sequence log-likelihood; Singularity's does not.
    count_first_token_twice: bool = False

    def _answer_decoder_sources(self) -> tuple[nn.Module, nn.ModuleList]:
        """`(text embeddings, multimodal encoder layers)` the answer decoder is initialized from."""
        raise NotImplementedError

    def tokenize_answer_list(self, tokenizer, answers: Sequence[str], max_length: int):
        """Token ids of `answers`, each starting with the decoder's start token (`[CLS] answer [SEP]`)."""
        return tokenizer(list(answers), truncation=True, max_length=max_length, add_special_tokens=True)

    @classmethod
    def from_pretraining(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs):
        """Load a pre-training checkpoint and start the answer decoder from it (:meth:`init_answer_decoder`, with
        the checkpoint's MLM head), as the authors do before QA fine-tuning. `from_pretrained` alone leaves the
        answer decoder randomly initialized: it is not in the checkpoint."""
        from safetensors.torch import load_file
        from transformers.utils import SAFE_WEIGHTS_NAME, logging
        from transformers.utils.hub import cached_file

        verbosity = logging.get_verbosity()
        logging.set_verbosity_error()  # the load report would list the answer decoder, filled right below
        try:
            model = cls.from_pretrained(pretrained_model_name_or_path, **kwargs)
        finally:
            logging.set_verbosity(verbosity)
        weights = cached_file(
            pretrained_model_name_or_path, SAFE_WEIGHTS_NAME, _raise_exceptions_for_missing_entries=False
        )
        prefix = "mlm_head."
        state = {k[len(prefix):]: v for k, v in load_file(weights).items() if k.startswith(prefix)} if weights else {}
        model.init_answer_decoder(state or None)
        return model

    @torch.no_grad()
    def init_answer_decoder(self, mlm_head_state: dict[str, torch.Tensor] | None = None) -> None:
        """Copy the multimodal encoder's layers (self-attention, cross-attention, feed-forward) and the text
        embeddings into the answer decoder and, when given, a `BertOnlyMLMHead` state dict
        (`predictions.transform.*`, `predictions.bias`) into its LM head, which reads the copied word embeddings."""
        embeddings, layers = self._answer_decoder_sources()
        decoder = self.answer_decoder
        decoder.bert.embeddings.load_state_dict(embeddings.state_dict())
        decoder.bert.encoder.layer.load_state_dict(layers.state_dict())
        if mlm_head_state is not None:
            head_state = {k: v for k, v in mlm_head_state.items() if not k.startswith("predictions.decoder.")}
            missing, unexpected = decoder.cls.load_state_dict(head_state, strict=False)
            if unexpected or any(not key.startswith("predictions.decoder.") for key in missing):
                raise ValueError(f"init_answer_decoder: MLM head state missing {missing}, unexpected {unexpected}.")
        decoder.cls.predictions.decoder.weight.copy_(decoder.bert.embeddings.word_embeddings.weight)

    def set_answer_list(self, answers: Sequence[str], tokenizer, max_length: int = 5) -> None:
        """Store `answers` and their tokens (:meth:`tokenize_answer_list`, at most `max_length` tokens) in the
        config, so the model ranks them and the pipeline names them."""
        answers = list(answers)
        if not answers:
            raise ValueError("set_answer_list: answers is empty.")
        encoding = self.tokenize_answer_list(tokenizer, answers, max_length)
        self.config.answer_list = answers
        self.config.answer_token_ids = [list(ids) for ids in encoding["input_ids"]]

    def _answer_tensors(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """`config.answer_token_ids`, right-padded: `(A, L_a)` ids and attention mask."""
        token_ids = self.config.answer_token_ids
        if not token_ids:
            raise ValueError(
                f"{type(self).__name__} has no tokenized answers (config.answer_token_ids); call "
                "model.set_answer_list(answers, tokenizer) first."
            )
        length = max(len(ids) for ids in token_ids)
        ids = torch.zeros(len(token_ids), length, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, answer in enumerate(token_ids):
            ids[row, : len(answer)] = torch.tensor(answer)
            mask[row, : len(answer)] = 1
        return ids.to(device), mask.to(device)

    def _answer_targets(self, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`(B,)` indices into `config.answer_list` (-100 = none) -> answer ids, mask `(B, L_a)` and a `(B,)` weight
        that is 0 for the ignored rows."""
        answer_ids, answer_mask = self._answer_tensors(labels.device)
        known = (labels >= 0) & (labels < answer_ids.shape[0])
        index = labels.clamp(0, answer_ids.shape[0] - 1)
        return answer_ids[index], answer_mask[index], known.to(torch.float32)

    def answer_token_log_probs(
        self,
        question_states: torch.Tensor,
        question_mask: torch.Tensor | None,
        answer_ids: torch.Tensor,
        answer_mask: torch.Tensor,
    ) -> torch.Tensor:
        """Log-probability of every answer token after the start token, `(N, L_a - 1)`, 0 at padding.

        Args:
            question_states: `(N, L_q, D)` fused question tokens; question_mask: `(N, L_q)`.
            answer_ids, answer_mask: `(N, L_a)` answers starting with the start token (`[CLS]`).
        """
        logits = self.answer_decoder(
            input_ids=answer_ids,
            attention_mask=answer_mask,
            encoder_hidden_states=question_states,
            encoder_attention_mask=question_mask,
        ).logits
        log_probs = logits[:, :-1].float().log_softmax(dim=-1)
        return log_probs.gather(-1, answer_ids[:, 1:, None]).squeeze(-1) * answer_mask[:, 1:]

    def answer_nll(
        self,
        question_states: torch.Tensor,
        question_mask: torch.Tensor | None,
        answer_ids: torch.Tensor,
        answer_mask: torch.Tensor | None,
        answer_weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The QA training loss: `sum(weight * nll) / B` of the `(B, L_a)` target answers (a plain mean without
        weights; the authors weight the answers of one question by their frequency)."""
        if answer_mask is None:
            answer_mask = torch.ones_like(answer_ids)
        nll = -self.answer_token_log_probs(question_states, question_mask, answer_ids, answer_mask).sum(dim=1)
        if answer_weights is not None:
            nll = nll * answer_weights
        return nll.sum() / nll.shape[0]

    def rank_answers(
        self, question_states: torch.Tensor, question_mask: torch.Tensor | None, top_k: int = 128
    ) -> torch.Tensor:
        """Score the answer list, as ALBEF's `rank_answer`.

        The `top_k` answers most likely by their first token are kept (the authors' `k_test = 128`); each gets its
        log-likelihood, plus `log p(first token)` once more with ``count_first_token_twice`` (UMT's authors'
        chain-rule sum adds the first-token log-probability to the full sequence loss).

        Returns:
            `(B, num_answers)` scores; answers outside the top k get `UNRANKED_ANSWER_LOGIT`.
        """
        answer_ids, answer_mask = self._answer_tensors(question_states.device)
        batch_size, num_answers = question_states.shape[0], answer_ids.shape[0]
        if question_mask is None:
            question_mask = torch.ones(question_states.shape[:2], dtype=torch.long, device=question_states.device)
        k = min(top_k, num_answers)
        if k < num_answers:
            # The first decoding step only sees the start token, shared by every answer.
            start = answer_ids[:1, :1].expand(batch_size, 1)
            first = self.answer_decoder(
                input_ids=start, encoder_hidden_states=question_states, encoder_attention_mask=question_mask
            ).logits[:, 0]
            top = first.float().log_softmax(-1)[:, answer_ids[:, 1]].topk(k, dim=1).indices  # (B, k)
        else:
            top = torch.arange(num_answers, device=answer_ids.device).expand(batch_size, num_answers)
        flat = top.flatten()
        token_log_probs = self.answer_token_log_probs(
            question_states.repeat_interleave(k, dim=0),
            question_mask.repeat_interleave(k, dim=0),
            answer_ids[flat],
            answer_mask[flat],
        )
        scores = token_log_probs.sum(dim=1)
        if self.count_first_token_twice:
            scores = scores + token_log_probs[:, 0]
        logits = scores.new_full((batch_size, num_answers), UNRANKED_ANSWER_LOGIT)
        return logits.scatter(1, top, scores.view(batch_size, k))


__all__ = ["UNRANKED_ANSWER_LOGIT", "AnswerDecoderMixin"]
