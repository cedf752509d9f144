"""Image intake: decoding, refusal of bad files, mode normalisation, fingerprints, metadata stripping."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from retinal_reason_data.ingest.imaging import (
    ImageError,
    fingerprint,
    open_image,
    png_chunk_types,
    png_text_chunk,
    strip_metadata,
)
from retinal_reason_data.ingest.perceptual_hash import perceptual_hash
from retinal_reason_data.schema import Modality


def _gradient(mode: str = "RGB", size: tuple[int, int] = (64, 48)) -> Image.Image:
    array = np.linspace(0, 255, size[0] * size[1] * 3).reshape(size[1], size[0], 3).astype(np.uint8)
    return Image.fromarray(array).convert(mode)


def _bytes(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def test_fingerprint_describes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(_bytes(_gradient(), "PNG"))
    ref = fingerprint(path, Modality.CFP)
    assert ref.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert len(ref.phash) == 64  # 256 bits
    assert (ref.width, ref.height) == (64, 48)


@pytest.mark.parametrize(
    "content, reason", [(b"", "image_unreadable"), (b"\x89PNG\r\n\x1a\nbroken", "image_unreadable")]
)
def test_bad_files_raise_with_a_reason(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(ImageError) as error:
        fingerprint(path, Modality.CFP)
    assert error.value.reason == reason and str(path) in error.value.detail


def test_truncated_jpeg_and_missing_file(tmp_path: Path) -> None:
    data = _bytes(_gradient(size=(256, 256)), "JPEG")
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageError, match="cannot decode"):
        fingerprint(tmp_path / "t.jpg", Modality.CFP)
    with pytest.raises(ImageError) as error:
        fingerprint(tmp_path / "absent.jpg", Modality.CFP)
    assert error.value.reason == "image_missing"


def test_decompression_bomb_is_refused_before_decoding() -> None:
    data = bytearray(_bytes(_gradient("L", (8, 8)), "PNG"))
    ihdr = struct.pack(">II", 30000, 30000) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    with pytest.raises(ImageError) as error:
        open_image(bytes(data), "bomb.png")
    assert error.value.reason == "image_too_large"


@pytest.mark.parametrize("mode", ["I;16", "CMYK", "P", "RGBA", "LA"])
def test_modes_are_normalised(mode: str) -> None:
    if mode == "I;16":
        image = Image.fromarray((np.arange(64 * 48).reshape(48, 64) * 20).astype(np.uint16))
        fmt = "PNG"
    else:
        image, fmt = _gradient(mode), ("JPEG" if mode == "CMYK" else "PNG")
    assert open_image(_bytes(image, fmt), "x").mode in ("RGB", "L")


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    data = _bytes(_gradient(size=(64, 32)), "JPEG", exif=exif.tobytes())
    assert open_image(data, "x").size == (32, 64)
    stripped = strip_metadata(data)
    assert Image.open(io.BytesIO(stripped)).size == (32, 64)
    assert b"Exif" not in stripped


def test_png_text_is_stripped_losslessly() -> None:
    plain = _bytes(_gradient(), "PNG")
    tagged = plain[:33] + png_text_chunk("Comment", "patient John Doe") + plain[33:]
    assert b"tEXt" in png_chunk_types(tagged)
    stripped = strip_metadata(tagged)
    assert b"tEXt" not in png_chunk_types(stripped) and b"John" not in stripped
    assert stripped == plain


def test_jpeg_exif_and_comments_are_stripped_losslessly() -> None:
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"
    exif[0x9003] = "2020:01:01 10:00:00"
    data = _bytes(_gradient(), "JPEG", exif=exif.tobytes(), comment=b"patient 123")
    stripped = strip_metadata(data)
    assert b"CameraMaker" not in stripped and b"patient 123" not in stripped
    before = np.asarray(Image.open(io.BytesIO(data)))
    after = np.asarray(Image.open(io.BytesIO(stripped)))
    assert np.array_equal(before, after)


def test_perceptual_hash_agrees_with_imagehash_phash() -> None:
    import imagehash

    from retinal_reason_data.phantoms.images import ffa_frame, fundus_photo, oct_bscan

    images = [fundus_photo(seed, "left", ["dr.moderate"], size=200).convert("L") for seed in range(4)]
    images += [fundus_photo(seed, "right", ["amd.wet"], size=256).convert("L").resize((256, 171)) for seed in range(4)]
    images += [oct_bscan(1, "right", ["oct.dme"], size=(200, 150)), ffa_frame(2, "left", ["ffa.leakage"], size=200)]
    ours = [imagehash.hex_to_hash(perceptual_hash(image)) for image in images]
    theirs = [imagehash.phash(image, hash_size=16) for image in images]
    for index, (mine, reference) in enumerate(zip(ours, theirs, strict=True)):
        assert mine - reference <= 8, f"image {index}: {mine - reference} of 256 bits differ from imagehash"
        others = [reference - other for position, other in enumerate(theirs) if position != index]
        assert min(others) > 3 * (mine - reference) + 20  # rounding noise is far below a different image
