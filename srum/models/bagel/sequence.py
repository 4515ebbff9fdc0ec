"""Segments → one padded batch of token sequences: routing, position ids and attention masks.

A sample is a list of segments: token runs (causal), clean images (ViT or VAE latents, seen
whole) and noisy latent blocks being denoised. BAGEL's rules, applied per sample:
- a token sees every token of earlier segments, except tokens of noisy blocks, which nobody
  outside the block sees; inside a token run attention is causal, inside an image block full;
- position ids: a token run takes consecutive ids; an image block (start marker, image tokens,
  end marker) shares one id, after which clean images advance the position by 1, noisy ones by 0;
- markers and text run through the understanding expert, latent tokens through the generation one.
Samples are right-padded to the longest; padded positions are masked out everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from srum.models.bagel.config import BagelConfig

PAD, TEXT, VIT, LATENT = 0, 1, 2, 3
IGNORE = -100  # label of tokens without a text loss


@dataclass
class Tokens:
    """A causal run of token ids; `labels[i]` is the target predicted at position i (or IGNORE)."""

    ids: list[int]
    labels: list[int] | None = None


@dataclass
class VitImage:
    """An image for understanding: pixels (3, H, W) in [-1, 1], H and W multiples of the ViT patch."""

    pixels: torch.Tensor


@dataclass
class Latent:
    """A VAE latent block: tokens (h*w, p*p*C) in row-major order over an (h, w) grid.

    `t` is the flow time of the tokens (0 = clean, 1 = pure noise). Noisy blocks are the ones the
    model denoises; their velocity is read out and nobody outside them attends to them.
    """

    tokens: torch.Tensor
    grid: tuple[int, int]
    t: float | torch.Tensor = 0.0
    noisy: bool = False


Segment = Tokens | VitImage | Latent


def text_segment(ids: list[int], config: BagelConfig, loss: bool = False) -> Tokens:
    """`[<|im_start|>] + ids + [<|im_end|>]`; with loss, each token predicts the next, `<|im_end|>` included."""
    st = config.special_tokens
    full = [st.bos_token_id, *ids, st.eos_token_id]
    labels = [*ids, st.eos_token_id, IGNORE] if loss else None
    return Tokens(full, labels)


@dataclass
class SequenceBatch:
    """A padded batch, ready to embed. Shapes: B samples × N positions."""

    kind: torch.Tensor  # (B, N) int: PAD / TEXT / VIT / LATENT
    token_ids: torch.Tensor  # (B, N) long, 0 where kind != TEXT
    position_ids: torch.Tensor  # (B, N) long RoPE ids
    attention_mask: torch.Tensor  # (B, N, N) bool, query × key inside this batch
    labels: torch.Tensor  # (B, N) long, IGNORE where no text loss
    noisy: torch.Tensor  # (B, N) bool: latent tokens whose velocity is wanted
    next_position: torch.Tensor  # (B,) long: the RoPE id the next segment would take
    vit_images: list[torch.Tensor] = field(default_factory=list)  # per image (3, H, W)
    latent_tokens: torch.Tensor | None = None  # (n_latent, p*p*C), in the row-major order of kind==LATENT
    latent_position_ids: torch.Tensor | None = None  # (n_latent,) row * max_latent_size + col
    latent_t: torch.Tensor | None = None  # (n_latent,) flow time per latent token

    @property
    def valid(self) -> torch.Tensor:
        return self.kind != PAD

    @property
    def gen_mask(self) -> torch.Tensor:
        """Tokens routed to the generation expert."""
        return self.kind == LATENT

    def to(self, device: torch.device | str) -> SequenceBatch:
        moved = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in self.__dict__.items()}
        moved["vit_images"] = [im.to(device) for im in self.vit_images]
        return SequenceBatch(**moved)


def build_batch(
    samples: list[list[Segment]],
    config: BagelConfig,
) -> SequenceBatch:
    """Lay out samples of segments as one right-padded batch (see the module docstring for the rules).

    Position ids start at 0; a forward on top of a cache shifts them by the cache's next position.
    """
    st = config.special_tokens
    rows = []
    for segments in samples:
        pos = 0
        kind, ids, position, label, split, split_mode, noisy = [], [], [], [], [], [], []
        latents, latent_pos, latent_t, vit = [], [], [], []
        for s_idx, seg in enumerate(segments):
            if isinstance(seg, Tokens):
                n = len(seg.ids)
                kind += [TEXT] * n
                ids += list(seg.ids)
                position += list(range(pos, pos + n))
                label += list(seg.labels) if seg.labels is not None else [IGNORE] * n
                noisy += [False] * n
                split += [s_idx] * n
                split_mode.append("causal")
                pos += n
                continue
            if isinstance(seg, VitImage):
                h, w = (d // config.vit_config.patch_size for d in seg.pixels.shape[-2:])
                inner, inner_kind, mode = h * w, VIT, "full"
                vit.append(seg.pixels)
            elif isinstance(seg, Latent):
                h, w = seg.grid
                if seg.tokens.shape[0] != h * w:
                    raise ValueError(f"latent block has {seg.tokens.shape[0]} tokens for a {h}x{w} grid")
                if max(h, w) > config.max_latent_size:
                    raise ValueError(f"latent grid {h}x{w} exceeds max_latent_size={config.max_latent_size}")
                inner, inner_kind, mode = h * w, LATENT, "noise" if seg.noisy else "full"
                latents.append(seg.tokens)
                rows_, cols_ = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
                latent_pos.append((rows_ * config.max_latent_size + cols_).flatten())
                t = torch.as_tensor(seg.t, dtype=torch.float32).reshape(-1)
                latent_t.append(t.expand(h * w) if t.numel() == 1 else t)
            else:
                raise TypeError(f"unknown segment type {type(seg).__name__}")
            n = inner + 2
            kind += [TEXT] + [inner_kind] * inner + [TEXT]
            ids += [st.start_of_image] + [0] * inner + [st.end_of_image]
            position += [pos] * n
            label += [IGNORE] * n
            noisy += [False] + [mode == "noise"] * inner + [False]
            split += [s_idx] * n
            split_mode.append(mode)
            if mode != "noise":
                pos += 1
        rows.append(dict(kind=kind, ids=ids, position=position, label=label, split=split, split_mode=split_mode,
                         noisy=noisy, latents=latents, latent_pos=latent_pos, latent_t=latent_t, vit=vit, next=pos))

    B, N = len(rows), max((len(r["kind"]) for r in rows), default=0)
    kind = torch.zeros(B, N, dtype=torch.long)
    token_ids = torch.zeros(B, N, dtype=torch.long)
    position_ids = torch.zeros(B, N, dtype=torch.long)
    labels = torch.full((B, N), IGNORE, dtype=torch.long)
    noisy = torch.zeros(B, N, dtype=torch.bool)
    mask = torch.zeros(B, N, N, dtype=torch.bool)
    for b, r in enumerate(rows):
        n = len(r["kind"])
        kind[b, :n] = torch.tensor(r["kind"], dtype=torch.long)
        token_ids[b, :n] = torch.tensor(r["ids"], dtype=torch.long)
        position_ids[b, :n] = torch.tensor(r["position"], dtype=torch.long)
        labels[b, :n] = torch.tensor(r["label"], dtype=torch.long)
        noisy[b, :n] = torch.tensor(r["noisy"], dtype=torch.bool)
        mask[b, :n, :n] = _segment_mask(torch.tensor(r["split"], dtype=torch.long), r["split_mode"])
    token_ids[kind != TEXT] = 0
    # A padded query row sees only itself, so softmax never meets an all-masked row.
    mask |= torch.eye(N, dtype=torch.bool).unsqueeze(0) & (kind == PAD).unsqueeze(-1)

    latents = [x for r in rows for x in r["latents"]]
    return SequenceBatch(
        kind=kind, token_ids=token_ids, position_ids=position_ids, attention_mask=mask, labels=labels, noisy=noisy,
        next_position=torch.tensor([r["next"] for r in rows], dtype=torch.long),
        vit_images=[x for r in rows for x in r["vit"]],
        latent_tokens=torch.cat(latents) if latents else None,
        latent_position_ids=torch.cat([x for r in rows for x in r["latent_pos"]]) if latents else None,
        latent_t=torch.cat([x for r in rows for x in r["latent_t"]]) if latents else None,
    )


def _segment_mask(split: torch.Tensor, modes: list[str]) -> torch.Tensor:
    """(n, n) bool mask of one sample from each token's segment index and each segment's mode."""
    n = split.numel()
    q, k = split.unsqueeze(1), split.unsqueeze(0)
    key_is_noise = torch.tensor([modes[s] == "noise" for s in split.tolist()], dtype=torch.bool).unsqueeze(0)
    earlier = (k < q) & ~key_is_noise
    causal_seg = torch.tensor([modes[s] == "causal" for s in split.tolist()], dtype=torch.bool).unsqueeze(1)
    lower = torch.ones(n, n, dtype=torch.bool).tril()
    same = (k == q) & (~causal_seg | lower)
    return earlier | same
