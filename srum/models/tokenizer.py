"""Word-level tokenizers for small worlds and tests, built offline with the `tokenizers` library.

BAGEL's structural tokens must sit at the ids its config names, so the vocabulary is laid out
explicitly: ordinary words first, special tokens at their fixed ids, unused slots named `<unused_i>`.
"""

from __future__ import annotations

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast

UNK = "<unk>"


def build_word_tokenizer(words: list[str], vocab_size: int, special_ids: dict[str, int]) -> PreTrainedTokenizerFast:
    """A lower-casing, whitespace/punctuation-splitting word tokenizer of exactly `vocab_size` ids."""
    taken = set(special_ids.values())
    vocab: dict[str, int] = {}
    free = (i for i in range(vocab_size) if i not in taken)
    for w in [UNK, *dict.fromkeys(w.lower() for w in words)]:
        try:
            vocab[w] = next(free)
        except StopIteration:
            raise ValueError(f"{len(words)} words and {len(special_ids)} special tokens do not fit {vocab_size} ids")
    for name, i in special_ids.items():
        vocab[name] = i
    used = set(vocab.values())
    vocab.update({f"<unused_{i}>": i for i in range(vocab_size) if i not in used})
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(list(special_ids))
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token=UNK)
