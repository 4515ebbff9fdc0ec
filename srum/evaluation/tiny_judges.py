"""Tiny randomly initialised judge models (Qwen2.5-VL, BLIP-VQA, CLIP, OWLv2) for tests and CPU dry runs.

`make_tiny_judges(dir)` writes `dir/{vlm,blip,clip,owl}`, each a folder that the real loaders in
`srum.evaluation.judges` read with `from_pretrained`: the same transformers classes as the real judges, a few
thousand parameters each, and byte-level (or word-level) tokenizers built here, so nothing is downloaded.
Their scores are meaningless; they exercise plumbing, shapes and aggregation only.
"""

from __future__ import annotations

from pathlib import Path

import torch

from srum.evaluation.judges.vlm import QWEN_CHAT_TEMPLATE

TINY_IMAGE = 32  # side of the tiny vision towers' input, in pixels


def _byte_vocab(suffix: str = "") -> dict[str, int]:
    """The 256 byte-level BPE symbols (GPT-2's byte→unicode map), optionally also with a word-end suffix."""
    # GPT-2's map: printable bytes stand for themselves, the rest are shifted past 255.
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = [chr(b) for b in printable] + [chr(256 + n) for n in range(256 - len(printable))]
    vocab = {c: i for i, c in enumerate(chars)}
    if suffix:
        vocab.update({c + suffix: len(chars) + i for i, c in enumerate(chars)})
    return vocab


_QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                 "<|image_pad|>", "<|video_pad|>"]


def make_tiny_vlm(path: Path) -> Path:
    """A tiny Qwen2.5-VL (every sub-config shrunk: transformers 5 defaults are the 7B/72B sizes), tokenizer with the
    Qwen chat template, and image processor."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2Tokenizer
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    vocab = _byte_vocab()
    special = {t: len(vocab) + i for i, t in enumerate(_QWEN_SPECIAL)}
    tok = Qwen2Tokenizer(vocab={**vocab, **special}, merges=[], unk_token="<|endoftext|>")
    tok.add_special_tokens({"additional_special_tokens": _QWEN_SPECIAL[1:]})
    vocab_size = len(vocab) + len(special)
    heads, head_dim = 2, 16
    config = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=vocab_size, hidden_size=heads * head_dim, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=heads, num_key_value_heads=1,
                         max_position_embeddings=2048, max_window_layers=1,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                          "mrope_section": [2, 3, 3]},  # sums to head_dim / 2
                         bos_token_id=special["<|endoftext|>"], eos_token_id=special["<|im_end|>"],
                         pad_token_id=special["<|endoftext|>"]),
        vision_config=dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=heads * head_dim,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=56,
                           fullatt_block_indexes=[0]),
        image_token_id=special["<|image_pad|>"], video_token_id=special["<|video_pad|>"],
        vision_start_token_id=special["<|vision_start|>"], vision_end_token_id=special["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = special["<|im_end|>"]
    model.generation_config.pad_token_id = special["<|endoftext|>"]
    # 56×56 px at most: 4×4 patches of 14 px, merged 2×2 → 4 image tokens.
    image_processor = Qwen2VLImageProcessorPil(min_pixels=28 * 28, max_pixels=56 * 56, patch_size=14,
                                               merge_size=2, temporal_patch_size=2)
    tok.chat_template = QWEN_CHAT_TEMPLATE
    model.save_pretrained(path)
    # Tokenizer and image processor saved separately, as the judge loads them (see VLMJudge).
    tok.save_pretrained(path)
    image_processor.save_pretrained(path)
    return path


def _clip_tokenizer():
    from transformers import CLIPTokenizer

    vocab = _byte_vocab(suffix="</w>")
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    return CLIPTokenizer(vocab=vocab, merges=[]), len(vocab)


def make_tiny_clip(path: Path) -> Path:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    tok, vocab_size = _clip_tokenizer()
    config = CLIPConfig(
        text_config=dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=77, projection_dim=16,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=TINY_IMAGE, patch_size=8, projection_dim=16),
        projection_dim=16,
    )
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(path)
    size = {"shortest_edge": TINY_IMAGE}
    CLIPProcessor(image_processor=CLIPImageProcessor(size=size, crop_size={"height": TINY_IMAGE, "width": TINY_IMAGE}),
                  tokenizer=tok).save_pretrained(path)
    return path


def make_tiny_owl(path: Path) -> Path:
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessor, Owlv2Processor

    tok, vocab_size = _clip_tokenizer()
    config = Owlv2Config(
        text_config=dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=16,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=TINY_IMAGE, patch_size=8),
        projection_dim=32,  # OWL's class head compares text embeddings with width text hidden_size
    )
    torch.manual_seed(0)
    Owlv2ForObjectDetection(config).save_pretrained(path)
    Owlv2Processor(image_processor=Owlv2ImageProcessor(size={"height": TINY_IMAGE, "width": TINY_IMAGE}),
                   tokenizer=tok).save_pretrained(path)
    return path


def make_tiny_blip(path: Path) -> Path:
    from transformers import BertTokenizer, BlipConfig, BlipForQuestionAnswering, BlipImageProcessor, BlipProcessor

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "yes", "no", "?"]
    words += [chr(c) for c in range(ord("a"), ord("z") + 1)] + [f"##{chr(c)}" for c in range(ord("a"), ord("z") + 1)]
    vocab = {w: i for i, w in enumerate(words)}
    tok = BertTokenizer(vocab=vocab)
    config = BlipConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, encoder_hidden_size=32, max_position_embeddings=64,
                         bos_token_id=vocab["[DEC]"], pad_token_id=vocab["[PAD]"], sep_token_id=vocab["[SEP]"]),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=TINY_IMAGE, patch_size=8),
        projection_dim=16,
    )
    torch.manual_seed(0)
    BlipForQuestionAnswering(config).save_pretrained(path)
    BlipProcessor(image_processor=BlipImageProcessor(size={"height": TINY_IMAGE, "width": TINY_IMAGE}),
                  tokenizer=tok).save_pretrained(path)
    return path


TINY_MAKERS = {"vlm": make_tiny_vlm, "blip": make_tiny_blip, "clip": make_tiny_clip, "owl": make_tiny_owl}


def make_tiny_judges(directory: str | Path, which: tuple[str, ...] = tuple(TINY_MAKERS)) -> dict[str, Path]:
    """Write tiny random judge models to `directory/<name>`; returns {name: folder} (the `--judge-paths` map)."""
    directory = Path(directory)
    out = {}
    for name in which:
        folder = directory / name
        if not (folder / "config.json").is_file():  # reuse what an earlier call wrote
            folder.mkdir(parents=True, exist_ok=True)
            TINY_MAKERS[name](folder)
        out[name] = folder
    return out
