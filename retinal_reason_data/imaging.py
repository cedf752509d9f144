"""Opening, validating, fingerprinting and metadata-stripping of image files."""

from __future__ import annotations

import ctypes
import hashlib
import io
import struct
import warnings
import zlib
from pathlib import Path

from PIL import Image, ImageOps

from retinal_reason_data.fieldhash import field_hashes, prepare
from retinal_reason_data.image_quality import measure
from retinal_reason_data.perceptual_hash import perceptual_hash
from retinal_reason_data.schema import ImageRef, Modality

MAX_PIXELS = 80_000_000  # about 9000 x 9000: larger than any fundus camera, smaller than a bomb
FINGERPRINT_VERSION = 5  # bump when a hash or measure changes: catalogs then drop their cached fingerprints
DRAFT_MIN_SIDE = 200  # a reduced (JPEG draft) decode keeps this much of its longest side: 1/8 scale from 1600 px


_MMAP_THRESHOLD = 32 * 1024 * 1024


def keep_buffers_in_heap() -> bool:
    """Ask glibc's malloc to serve buffers up to 32 MB from its heap instead of fresh mmaps.

    Each fingerprint allocates a ~1 MB file buffer, decode buffers and NumPy temporaries of a few hundred kB;
    served by mmap, every one is page-faulted and zeroed anew, which cost 2-3 ms of CPU per image (more than
    all the hashing). Called in every intake worker; False where the C library is not glibc."""
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, _MMAP_THRESHOLD)) and bool(mallopt(m_trim_threshold, 2 * _MMAP_THRESHOLD))


class ImageError(ValueError):
    """An image that cannot be used; `reason` is a short code for quarantine counts."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail

    def __reduce__(self) -> tuple[type[ImageError], tuple[str, str]]:
        return ImageError, (self.reason, self.detail)


def open_image(data: bytes, path: str | Path, reduce_to: int | None = None) -> Image.Image:
    """Decode `data`, apply EXIF orientation, return RGB or L. With `reduce_to`, a JPEG is decoded at the
    smallest DCT scale (1/2, 1/4, 1/8) that keeps at least that many pixels on its longest side."""
    return _decode(data, path, reduce_to)[0]


def draft_size(size: tuple[int, int], min_side: int) -> tuple[int, int]:
    """The size to ask of PIL's JPEG `draft` so that it picks the largest scale whose longest side keeps
    `min_side` pixels (PIL picks the largest of 8, 4, 2, 1 that keeps both requested sides)."""
    scale = next(s for s in (8, 4, 2, 1) if max(size) // s >= min_side or s == 1)
    return max(1, size[0] // scale), max(1, size[1] // scale)


def _decode(
    data: bytes, path: str | Path, reduce_to: int | None, grey: bool = False
) -> tuple[Image.Image, tuple[int, int]]:
    """The decoded image (grey level when `grey`: a JPEG then decodes its luma only) and its full size after
    EXIF orientation."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise ImageError("image_too_large", f"{path}: {width}x{height} pixels exceeds {MAX_PIXELS}")
            if image.format == "JPEG" and (reduce_to or grey):
                image.draft("L" if grey else "RGB", draft_size(image.size, reduce_to) if reduce_to else None)
            orientation = image.getexif().get(0x0112, 1)
            image.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError("image_too_large", f"{path}: {exc}") from exc
    except (OSError, SyntaxError, ValueError, struct.error) as exc:
        raise ImageError("image_unreadable", f"{path}: cannot decode image: {exc}") from exc
    full_size = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
    if orientation not in (1, None):
        image = ImageOps.exif_transpose(image)
    image = _normalise_mode(image)
    return (image.convert("L") if grey and image.mode != "L" else image), full_size


def _normalise_mode(image: Image.Image) -> Image.Image:
    if image.mode in ("RGB", "L"):
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        return image.point(lambda value: value / 256).convert("L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (0, 0, 0))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def fingerprint(path: str | Path, modality: Modality, caption: str | None = None) -> ImageRef:
    """Read one image file and describe it: size, SHA-256 of its bytes, 256-bit pHash."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ImageError("image_missing", f"{path}: file named by the labels does not exist") from exc
    except OSError as exc:
        raise ImageError("image_unreadable", f"{path}: cannot read file: {exc}") from exc
    if not data:
        raise ImageError("image_unreadable", f"{path}: file is empty")
    image, full_size = _decode(data, path, reduce_to=DRAFT_MIN_SIDE)
    # the luma's 256 px reduction (pixels and histogram) serves every hash and the exposure measures; the decode
    # itself the gradability measures (its green channel, where vessels have their contrast, and its blue)
    work = prepare(image.convert("L") if image.mode != "L" else image)
    near_hash, detail_hash = field_hashes(work)
    return ImageRef(
        path=str(path),
        sha256=hashlib.sha256(data).hexdigest(),
        phash=perceptual_hash(work.pixels),
        width=full_size[0],
        height=full_size[1],
        modality=modality,
        caption=caption,
        quality=measure(work, image),
        near_hash=near_hash,
        detail_hash=detail_hash,
    )


def fingerprint_task(task: tuple[str, Modality]) -> ImageRef | ImageError:
    """`fingerprint` for a worker process: returns the error that refuses the image instead of raising."""
    try:
        return fingerprint(task[0], task[1])
    except ImageError as exc:
        return exc


def _has_rotation(image: Image.Image) -> bool:
    return image.getexif().get(0x0112, 1) not in (1, None)


# --- metadata stripping -------------------------------------------------------------------------

_JPEG_KEEP_APP = {0xE0, 0xEE}  # JFIF and Adobe (colour transform); EXIF, XMP, ICC comments dropped
_PNG_DROP = {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"}


def strip_metadata(data: bytes, path: str | Path = "<bytes>") -> bytes:
    """Return the image without EXIF, XMP, comments or text chunks, losslessly where the format allows.

    JPEG and PNG are rewritten segment by segment (pixels untouched); a JPEG whose EXIF rotates it, and
    any other format, is decoded and re-encoded as PNG with the orientation applied.
    """
    if data[:2] == b"\xff\xd8":
        with Image.open(io.BytesIO(data)) as probe:
            rotated = _has_rotation(probe)
        if not rotated:
            return _strip_jpeg(data)
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        return _strip_png(data)
    image = open_image(data, path)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def _strip_jpeg(data: bytes) -> bytes:
    out = bytearray(data[:2])
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            raise ImageError("image_unreadable", "corrupt JPEG marker stream")
        marker = data[position + 1]
        if marker == 0xDA:  # start of scan: the rest is entropy-coded data
            out += data[position:]
            return bytes(out)
        length = struct.unpack(">H", data[position + 2 : position + 4])[0]
        segment = data[position : position + 2 + length]
        is_metadata = (0xE1 <= marker <= 0xEF and marker not in _JPEG_KEEP_APP) or marker == 0xFE
        if not is_metadata:
            out += segment
        position += 2 + length
    raise ImageError("image_unreadable", "JPEG without image data")


def _strip_png(data: bytes) -> bytes:
    out = bytearray(data[:8])
    position = 8
    while position + 12 <= len(data):
        length = struct.unpack(">I", data[position : position + 4])[0]
        kind = data[position + 4 : position + 8]
        chunk = data[position : position + 12 + length]
        if kind not in _PNG_DROP:
            out += chunk
        position += 12 + length
        if kind == b"IEND":
            break
    return bytes(out)


def png_chunk_types(data: bytes) -> list[bytes]:
    """The chunk types of a PNG, in order (used to check that metadata is gone)."""
    kinds, position = [], 8
    while position + 12 <= len(data):
        length = struct.unpack(">I", data[position : position + 4])[0]
        kinds.append(data[position + 4 : position + 8])
        position += 12 + length
    return kinds


def png_text_chunk(key: str, value: str) -> bytes:
    """A PNG tEXt chunk (phantom generators use it to imitate metadata that must be stripped)."""
    body = key.encode("latin-1") + b"\x00" + value.encode("latin-1")
    return struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body))
