"""Tokens and shards: tokenizers, rendering with loss masks, shard writing, the mix, the packed reader, Megatron export."""
