"""A tiny decoder-only mixture-of-experts in Hunyuan-Large's shape, and one training step on packed sequences.

A consumer demonstration for the tests, not product code. The shape follows Hunyuan-Large's
MoE: every layer's feed-forward is one shared expert that sees every token plus routed experts
of which a softmax router picks one per token (top-1), its output scaled by the router's
probability; attention is grouped-query (query heads share fewer key/value heads) with rotary
positions, pre-norm RMSNorm and SwiGLU experts. Left out at this size: cross-layer attention
(key/value shared between layers), QK-norm, expert capacity and the re-routing of tokens over it.

Packing is honoured as a trainer must: attention stays inside a document piece (causal and same
`segment_ids`), rotary positions are the reader's `position_ids`, and the loss is weighted by
the reader's `label_mask`, so prompt tokens and cross-document predictions are not trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from synthmix.pipeline.tokens.packing import PackedSequence

ROUTER_BALANCE_WEIGHT = 0.01  # the load-balancing loss's share, as in switch-style MoE training


@dataclass(frozen=True)
class TinyMoEConfig:
    vocab_size: int
    width: int = 64
    layers: int = 2
    query_heads: int = 4
    kv_heads: int = 2  # grouped-query: two query heads per key/value head
    routed_experts: int = 4
    expert_width: int = 128
    rope_base: float = 10_000.0


class SwiGLU(nn.Module):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.gate = nn.Linear(width, hidden, bias=False)
        self.up = nn.Linear(width, hidden, bias=False)
        self.down = nn.Linear(hidden, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


class SharedAndRoutedExperts(nn.Module):
    """One shared expert plus top-1 routed experts; returns the output and the load-balancing loss."""

    def __init__(self, config: TinyMoEConfig) -> None:
        super().__init__()
        self.shared = SwiGLU(config.width, config.expert_width)
        self.experts = nn.ModuleList(SwiGLU(config.width, config.expert_width) for _ in range(config.routed_experts))
        self.router = nn.Linear(config.width, config.routed_experts, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = x.reshape(-1, x.shape[-1])
        probabilities = self.router(tokens).softmax(dim=-1)
        weight, choice = probabilities.max(dim=-1)
        routed = torch.zeros_like(tokens)
        for index, expert in enumerate(self.experts):
            chosen = (choice == index).nonzero(as_tuple=True)[0]
            if len(chosen):
                routed[chosen] = expert(tokens[chosen]) * weight[chosen, None]
        # Fraction of tokens each expert got times its mean probability: smallest when balanced.
        share = F.one_hot(choice, len(self.experts)).float().mean(dim=0)
        balance = len(self.experts) * (share * probabilities.mean(dim=0)).sum()
        return (self.shared(tokens) + routed).reshape(x.shape), balance


class GroupedQueryAttention(nn.Module):
    def __init__(self, config: TinyMoEConfig) -> None:
        super().__init__()
        self.heads, self.kv_heads = config.query_heads, config.kv_heads
        self.head_width = config.width // config.query_heads
        self.query = nn.Linear(config.width, self.heads * self.head_width, bias=False)
        self.key = nn.Linear(config.width, self.kv_heads * self.head_width, bias=False)
        self.value = nn.Linear(config.width, self.kv_heads * self.head_width, bias=False)
        self.out = nn.Linear(self.heads * self.head_width, config.width, bias=False)
        inverse = 1.0 / config.rope_base ** (torch.arange(0, self.head_width, 2).float() / self.head_width)
        self.register_buffer("inverse_frequencies", inverse, persistent=False)

    def forward(self, x: torch.Tensor, positions: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        q = self.query(x).view(batch, length, self.heads, self.head_width).transpose(1, 2)
        k = self.key(x).view(batch, length, self.kv_heads, self.head_width).transpose(1, 2)
        v = self.value(x).view(batch, length, self.kv_heads, self.head_width).transpose(1, 2)
        angles = positions[:, None, :, None].float() * self.inverse_frequencies
        q, k = _rotate(q, angles), _rotate(k, angles)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, enable_gqa=True)
        return self.out(attended.transpose(1, 2).reshape(batch, length, -1))


def _rotate(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    even, odd = x[..., 0::2], x[..., 1::2]
    cos, sin = angles.cos(), angles.sin()
    return torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1).flatten(-2)


class Block(nn.Module):
    def __init__(self, config: TinyMoEConfig) -> None:
        super().__init__()
        self.attention_norm = nn.RMSNorm(config.width)
        self.attention = GroupedQueryAttention(config)
        self.experts_norm = nn.RMSNorm(config.width)
        self.experts = SharedAndRoutedExperts(config)

    def forward(self, x: torch.Tensor, positions: torch.Tensor, allowed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x + self.attention(self.attention_norm(x), positions, allowed)
        mixed, balance = self.experts(self.experts_norm(x))
        return x + mixed, balance


class TinyMoE(nn.Module):
    def __init__(self, config: TinyMoEConfig) -> None:
        super().__init__()
        self.embedding = nn.Embedding(config.vocab_size, config.width)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.layers))
        self.norm = nn.RMSNorm(config.width)
        self.head = nn.Linear(config.width, config.vocab_size, bias=False)

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor, segment_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        length = input_ids.shape[1]
        causal = torch.ones(length, length, dtype=torch.bool).tril()
        allowed = (causal & (segment_ids[:, :, None] == segment_ids[:, None, :]))[:, None]
        x = self.embedding(input_ids)
        balance = x.new_zeros(())
        for block in self.blocks:
            x, block_balance = block(x, position_ids, allowed)
            balance = balance + block_balance
        return self.head(self.norm(x)), balance / len(self.blocks)


@dataclass(frozen=True)
class Step:
    """One optimizer step: its language-model loss and the loss weight of every (sequence, position)."""

    loss: float
    sequences: list[PackedSequence]
    weights: np.ndarray  # [batch, seq_len]: 1 where the position's label was a training target


def train_step(model: TinyMoE, optimizer: torch.optim.Optimizer, sequences: list[PackedSequence]) -> Step:
    """Next-token cross-entropy over the batch, weighted by the reader's label_mask, plus the balance loss."""

    def stacked(name: str) -> torch.Tensor:
        return torch.from_numpy(np.stack([getattr(sequence, name) for sequence in sequences]).astype(np.int64))

    logits, balance = model(stacked("input_ids"), stacked("position_ids"), stacked("segment_ids"))
    weights = stacked("label_mask").float()
    per_token = F.cross_entropy(logits.flatten(0, 1), stacked("labels").flatten(), reduction="none").view_as(weights)
    loss = (per_token * weights).sum() / weights.sum().clamp(min=1)
    optimizer.zero_grad()
    (loss + ROUTER_BALANCE_WEIGHT * balance).backward()
    optimizer.step()
    return Step(loss=loss.item(), sequences=sequences, weights=weights.numpy().astype(np.uint8))
