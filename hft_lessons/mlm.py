"""Masked-language-model pre-training: 80/10/10 masking, the MLM loss, an MLM head, a text corpus, a train
loop."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from .tasks.base import IGNORE_INDEX
from .transformer import BertEncoder, activation

if TYPE_CHECKING:
    from transformers import BertConfig, PreTrainedTokenizerBase

    from .profiles import Profile

__all__ = [
    "IGNORE_INDEX",
    "mask_tokens",
    "special_token_ids",
    "mlm_loss",
    "MLMHead",
    "BertForMLM",
    "pretraining_corpus",
    "tokenize_corpus",
    "train_mlm",
    "fill_mask",
]

def special_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The ids MLM must never mask: [CLS], [SEP], [PAD], [MASK], [UNK] and any other special token."""
    return sorted(set(tokenizer.all_special_ids))


def mask_tokens(
    input_ids: torch.Tensor,
    mask_token_id: int,
    vocab_size: int,
    special_ids: Sequence[int],
    mlm_probability: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking: pick 15% of non-special tokens; 80% -> [MASK], 10% -> random, 10% kept. Returns
    (inputs, labels)."""
    labels = input_ids.clone()
    special = torch.isin(input_ids, torch.as_tensor(list(special_ids), device=input_ids.device))
    probs = torch.full(input_ids.shape, mlm_probability, device=input_ids.device).masked_fill(special, 0.0)
    chosen = torch.bernoulli(probs, generator=generator).bool()
    labels[~chosen] = IGNORE_INDEX  # the loss only looks at chosen positions
    u = torch.rand(input_ids.shape, generator=generator, device=input_ids.device)
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator, device=input_ids.device)
    inputs = input_ids.clone()
    inputs[chosen & (u < 0.8)] = mask_token_id
    swap = chosen & (u >= 0.8) & (u < 0.9)
    inputs[swap] = random_ids[swap]
    return inputs, labels


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy -log p(true token) over the positions whose label is not -100."""
    logits, labels = logits.reshape(-1, logits.size(-1)), labels.reshape(-1)
    keep = labels != IGNORE_INDEX
    log_probs = logits[keep].float().log_softmax(dim=-1)
    return -log_probs.gather(1, labels[keep].unsqueeze(1)).mean()


class MLMHead(nn.Module):
    """BERT's MLM head: dense + activation + LayerNorm, then a decoder tied to the word embeddings."""

    def __init__(self, config: BertConfig, word_embeddings: nn.Embedding | None = None):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = activation(config.hidden_act)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)
        if word_embeddings is not None:
            self.decoder.weight = word_embeddings.weight  # weight tying, as in BERT
        nn.init.normal_(self.dense.weight, std=config.initializer_range)
        nn.init.zeros_(self.dense.bias)
        nn.init.zeros_(self.decoder.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Hidden states [..., hidden] -> vocabulary logits [..., vocab]."""
        return self.decoder(self.norm(self.act(self.dense(hidden))))


class BertForMLM(nn.Module):
    """A BertEncoder plus an MLM head; ``loss`` scores only the masked positions (cheap: no full-vocab
    logits)."""

    def __init__(self, encoder: BertEncoder):
        super().__init__()
        self.encoder = encoder
        self.config = encoder.config
        self.head = MLMHead(encoder.config, encoder.embeddings.word_embeddings)
        self.head_pretrained = False

    @classmethod
    def from_config(cls, config: BertConfig) -> BertForMLM:
        """A randomly initialised encoder + head, shaped like ``config``."""
        return cls(BertEncoder.from_config(config))

    @classmethod
    def from_pretrained(cls, name_or_path: str | None = None, verbose: bool = True) -> BertForMLM:
        """Load a checkpoint's encoder, and its MLM head too when the checkpoint has one (else a fresh
        head)."""
        from transformers import BertForMaskedLM

        from .backbone import check_bert_family, resolve_backbone
        from .profiles import TINY

        path = resolve_backbone(name_or_path, verbose=verbose)
        if path == TINY:
            model = cls(BertEncoder.from_pretrained(TINY, verbose=False))
            return model.eval()
        check_bert_family(path)
        hf, info = BertForMaskedLM.from_pretrained(path, output_loading_info=True)
        model = cls(BertEncoder.from_hf(hf.bert))
        if not any(k.startswith("cls.predictions") for k in info["missing_keys"]):
            p = hf.cls.predictions
            with torch.no_grad():
                model.head.dense.load_state_dict(p.transform.dense.state_dict())
                model.head.norm.load_state_dict(p.transform.LayerNorm.state_dict())
                model.head.decoder.bias.copy_(p.bias if p.bias is not None else p.decoder.bias)
            model.head_pretrained = True
        return model.eval()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Vocabulary logits for every position [batch, seq, vocab]."""
        return self.head(self.encoder(input_ids, attention_mask, token_type_ids))

    def loss(
        self, input_ids: torch.Tensor, labels: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The MLM loss, computing vocabulary logits only where labels != -100."""
        hidden = self.encoder(input_ids, attention_mask)
        keep = labels != IGNORE_INDEX
        return mlm_loss(self.head(hidden[keep]), labels[keep])


def pretraining_corpus(profile: Profile, data_dir: str | None = None, verbose: bool = True) -> list[str]:
    """Raw text for MLM: SST-2 sentences plus SQuAD contexts, as many as the profile allows (deduplicated)."""
    from .data import load_task, subset

    sst2, squad = profile.task("sst2"), profile.task("squad")
    sentences = subset(load_task("sst2", data_dir, verbose)["train"], sst2.max_train)["sentence"]
    contexts = subset(load_task("squad", data_dir, verbose)["train"], squad.max_train)["context"]
    seen: set[str] = set()
    texts = []
    for text in [*sentences, *contexts]:
        text = text.strip()
        if text and text not in seen:
            seen.add(text)
            texts.append(text)
    return texts


def tokenize_corpus(
    texts: Sequence[str], tokenizer: PreTrainedTokenizerBase, max_length: int
) -> list[list[int]]:
    """Tokenize and cut long texts into windows of at most ``max_length`` tokens (with [CLS] … [SEP])."""
    body = max_length - 2
    chunks = []
    for ids in tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]:
        for start in range(0, max(len(ids), 1), body):
            piece = ids[start : start + body]
            if piece:
                chunks.append([tokenizer.cls_token_id, *piece, tokenizer.sep_token_id])
    return chunks


def _batches(chunks: list[list[int]], batch_size: int, pad_id: int, generator: torch.Generator):
    order = torch.randperm(len(chunks), generator=generator).tolist()
    for i in range(0, len(order), batch_size):
        rows = [chunks[j] for j in order[i : i + batch_size]]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        for r, row in enumerate(rows):
            ids[r, : len(row)] = torch.tensor(row)
        yield ids, (ids != pad_id).long()


def train_mlm(
    model: BertForMLM,
    chunks: list[list[int]],
    tokenizer: PreTrainedTokenizerBase,
    epochs: int = 1,
    batch_size: int = 32,
    lr: float = 5e-4,
    max_steps: int | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    log_every: int = 20,
    mlm_probability: float = 0.15,
) -> list[float]:
    """A short MLM pre-training run (AdamW, linear warm-up and decay); returns the loss of every step."""
    if not 0.0 < mlm_probability < 1.0:
        raise ValueError(f"mlm_probability must be between 0 and 1 (exclusive), got {mlm_probability}")
    generator = torch.Generator().manual_seed(seed)
    steps = epochs * math.ceil(len(chunks) / batch_size)
    steps = min(steps, max_steps) if max_steps else steps
    warmup = max(1, steps // 10)
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup)))
    )
    specials = special_token_ids(tokenizer)
    losses: list[float] = []
    start = time.perf_counter()
    while len(losses) < steps:
        for ids, attn in _batches(chunks, batch_size, tokenizer.pad_token_id, generator):
            inputs, labels = mask_tokens(
                ids, tokenizer.mask_token_id, len(tokenizer), specials, mlm_probability, generator
            )
            if (labels == IGNORE_INDEX).all():
                continue
            loss = model.loss(inputs.to(device), labels.to(device), attn.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
            if log_every and (len(losses) % log_every == 0 or len(losses) == steps):
                recent = sum(losses[-log_every:]) / len(losses[-log_every:])
                print(
                    f"step {len(losses):4d}/{steps} | loss {recent:.3f} | {time.perf_counter() - start:.0f}s"
                )
            if len(losses) >= steps:
                break
    model.eval()
    return losses


@torch.no_grad()
def fill_mask(model: BertForMLM, tokenizer: PreTrainedTokenizerBase, text: str, k: int = 5) -> list[str]:
    """The top-``k`` tokens the model predicts for the first [MASK] in ``text``."""
    model.eval()
    device = next(model.parameters()).device
    enc = tokenizer(text, return_tensors="pt").to(device)
    where = (enc["input_ids"][0] == tokenizer.mask_token_id).nonzero()
    if len(where) == 0:
        raise ValueError(f"no {tokenizer.mask_token} in {text!r}; put one where the blank is")
    logits = model(enc["input_ids"], enc["attention_mask"])[0, where[0, 0]]
    return tokenizer.convert_ids_to_tokens(logits.topk(k).indices.tolist())
