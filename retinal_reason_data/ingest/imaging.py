"""Opening, validating, fingerprinting and metadata-stripping of image files."""

from __future__ import annotations

import ctypes
import hashlib
import io
import logging
import os
import re
import stat
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from retinal_reason_data.ingest.copy_signature import copy_signature
from retinal_reason_data.ingest.fieldhash import field_hashes, prepare
from retinal_reason_data.ingest.file_names import display
from retinal_reason_data.ingest.image_quality import measure
from retinal_reason_data.ingest.perceptual_hash import perceptual_hash
from retinal_reason_data.schema import ImageRef, Modality

log = logging.getLogger(__name__)

MAX_PIXELS = 80_000_000  # about 9000 x 9000: larger than any fundus camera, smaller than a bomb
FINGERPRINT_VERSION = 9  # bump when a hash or measure changes: catalogs then drop their cached fingerprints
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
    data: bytes, path: str | Path, reduce_to: int | None, grey: bool = False, notes: list[str] | None = None
) -> tuple[Image.Image, tuple[int, int]]:
    """The decoded image (grey level when `grey`: a JPEG then decodes its luma only) and its full size after
    EXIF orientation. Pillow's warnings (corrupt EXIF, truncated metadata) go to `notes`, else to the log, with
    the file's name."""
    shown = display(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise ImageError("image_too_large", f"{shown}: {width}x{height} pixels exceeds {MAX_PIXELS}")
            if image.format == "JPEG" and (reduce_to or grey):
                image.draft("L" if grey else "RGB", draft_size(image.size, reduce_to) if reduce_to else None)
            orientation = image.getexif().get(0x0112, 1)
            image.load()
        except ImageError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageError("image_too_large", f"{shown}: {exc}") from exc
        except UnidentifiedImageError:
            detail = f"{shown}: not an image file Pillow can read ({_looks_like(data)})"
            raise ImageError("image_unreadable", detail) from None
        except (OSError, SyntaxError, ValueError, struct.error, EOFError) as exc:
            raise ImageError("image_unreadable", f"{shown}: cannot decode image: {_plain(exc)}") from exc
        finally:
            _keep_warnings(caught, shown, notes)
    full_size = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
    if orientation not in (1, None):
        image = ImageOps.exif_transpose(image)
    image = _normalise_mode(image, shown)
    return (image.convert("L") if grey and image.mode != "L" else image), full_size


def _keep_warnings(caught: list[warnings.WarningMessage], shown: str, notes: list[str] | None) -> None:
    """Pillow's warnings about the data (UserWarning, RuntimeWarning), with the file; a developer's warning
    (DeprecationWarning) is not about the file and is left out."""
    for warning in caught:
        if not issubclass(warning.category, UserWarning | RuntimeWarning):
            continue
        text = f"{warning.category.__name__}: {_plain(warning.message)}"
        if notes is None:
            log.warning("%s: %s", shown, text)
        elif text not in notes:
            notes.append(text)


_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>")


def _plain(error: object) -> str:
    """An exception's or a warning's text without the object reprs Pillow puts in it (a BytesIO at 0x...)."""
    return _REPR.sub("the data", str(error)).strip() or type(error).__name__


_SIGNATURES = (
    (b"\x89PNG", "PNG"),
    (b"\xff\xd8", "JPEG"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
    (b"GIF8", "GIF"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or an Office file)"),
    (b"<", "text or markup"),
)


def _looks_like(data: bytes) -> str:
    """What the first bytes of a file that is not a readable image suggest it is."""
    for signature, kind in _SIGNATURES:
        if data.startswith(signature):
            start = "starts like " + kind
            if kind in ("PNG", "JPEG", "TIFF", "BMP", "GIF"):
                start += ", but is damaged or truncated"
            return f"{start}; {len(data)} bytes"
    return f"starts with {data[:8]!r}; {len(data)} bytes"


def _normalise_mode(image: Image.Image, shown: str = "") -> Image.Image:
    """RGB or L. Images of 16-bit, 32-bit or floating-point samples are scaled to 8 bits by their range (see
    `_scaled_to_bytes`); transparency is flattened on black."""
    if image.mode in ("RGB", "L"):
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _scaled_to_bytes(image, shown)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (0, 0, 0))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


_BIT_DEPTHS = (8, 10, 12, 14, 16, 24, 32)


def _scaled_to_bytes(image: Image.Image, shown: str) -> Image.Image:
    """A grey image of wide samples as 8 bits. Whole numbers from 0 are scaled by the smallest bit depth that
    holds their maximum (a 12-bit camera's file in a 16-bit container keeps its exposure: 4095 is white);
    floating-point samples within 0-1 are scaled by 255, within 0-255 kept, and any other range (negative
    numbers too) is stretched from its minimum to its maximum. A file without finite samples, or whose samples
    are all equal outside 0-1, is refused."""
    values = np.asarray(image)
    finite = np.isfinite(values) if values.dtype.kind == "f" else np.ones(values.shape, dtype=bool)
    if not finite.any():
        raise ImageError("image_unreadable", f"{shown}: {image.mode} image without a finite sample (NaN or inf)")
    low, high = float(values[finite].min()), float(values[finite].max())
    if values.dtype.kind != "f" and low >= 0:
        depth = next((bits for bits in _BIT_DEPTHS if high <= 2**bits - 1), 32)
        scale_low, scale_high = 0.0, float(2**depth - 1)
    elif low >= 0 and high <= 1:
        scale_low, scale_high = 0.0, 1.0
    elif low >= 0 and high <= 255:
        scale_low, scale_high = 0.0, 255.0
    elif high > low:
        scale_low, scale_high = low, high
    else:
        raise ImageError("image_unreadable", f"{shown}: {image.mode} image whose samples all equal {low:g}")
    scaled = (np.where(finite, values, scale_low).astype(np.float64) - scale_low) * (255.0 / (scale_high - scale_low))
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")


MAX_FILE_BYTES = 1 << 30  # an image file larger than this is refused before it is read into memory


def read_image_file(path: str | Path) -> bytes:
    """The bytes of an image file; ImageError for a file that is missing, not a regular file (a folder, a FIFO
    that would block, a device), empty, larger than MAX_FILE_BYTES or unreadable."""
    shown = display(path)
    try:
        with open(path, "rb") as handle:
            mode = os.fstat(handle.fileno())
            if not stat.S_ISREG(mode.st_mode):
                raise ImageError("image_not_a_file", f"{shown}: not a regular file")
            if mode.st_size > MAX_FILE_BYTES:
                raise ImageError("image_too_large", f"{shown}: {mode.st_size} bytes exceeds {MAX_FILE_BYTES}")
            data = handle.read()
    except FileNotFoundError as exc:
        raise ImageError("image_missing", f"{shown}: file named by the labels does not exist") from exc
    except IsADirectoryError as exc:
        raise ImageError("image_not_a_file", f"{shown}: is a folder, not an image file") from exc
    except OSError as exc:
        raise ImageError("image_unreadable", f"{shown}: cannot read file: {exc.strerror or exc}") from exc
    if not data:
        raise ImageError("image_unreadable", f"{shown}: file is empty")
    return data


def fingerprint(
    path: str | Path, modality: Modality, caption: str | None = None, notes: list[str] | None = None
) -> ImageRef:
    """Read one image file and describe it: size, SHA-256 of its bytes, 256-bit pHash, field hashes and copy
    signature, quality measures. Pillow's warnings about
    the file go to `notes` when given (else to the log, with the file's name)."""
    path = Path(path)
    data = read_image_file(path)
    image, full_size = _decode(data, path, reduce_to=DRAFT_MIN_SIDE, notes=notes)
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
        copy_hash=copy_signature(work),
    )


def fingerprint_task(task: tuple[str, Modality]) -> tuple[ImageRef | ImageError, tuple[str, ...]]:
    """`fingerprint` for a worker process: returns the error that refuses the image instead of raising, and
    Pillow's warnings about the file."""
    notes: list[str] = []
    try:
        return fingerprint(task[0], task[1], notes=notes), tuple(notes)
    except ImageError as exc:
        return exc, tuple(notes)


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
