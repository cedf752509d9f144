"""Images as the teacher sees them: JPEG data URLs, resized from a reduced decode, encoded once per image."""

from __future__ import annotations

import base64
import io
import math
from functools import lru_cache
from pathlib import Path

from PIL import Image

from retinal_reason_data.ingest.imaging import ImageError, open_image

JPEG_QUALITY = 90
PATCH_PX = 28  # one visual token per 28 x 28 pixels (Qwen2-VL family; close to OpenAI's tiles at 768 px)


@lru_cache(maxsize=256)
def image_data_url(path: str, max_side: int) -> str:
    """A JPEG data URL of the image, its longest side at most `max_side`, from a reduced (draft) decode.

    Requests are built case by case, so every request that shows an image reuses one encoding."""
    image = open_image(Path(path).read_bytes(), path, reduce_to=max_side)
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def data_url_or_error(path: str, max_side: int) -> str | ImageError:
    """`image_data_url`, or the ImageError for a file that went missing or unreadable since ingest."""
    try:
        return image_data_url(path, max_side)
    except FileNotFoundError as exc:
        return ImageError("image_missing", f"{path}: {exc.strerror}")
    except OSError as exc:
        return ImageError("image_unreadable", f"{path}: {exc}")
    except ImageError as exc:
        return exc


def image_token_estimate(max_side: int, width: int | None = None, height: int | None = None) -> int:
    """Prompt tokens of one image sent at `max_side`, for estimates before a reply reports the real count."""
    if width and height:
        scale = min(1.0, max_side / max(width, height))
        return max(1, math.ceil(width * scale / PATCH_PX) * math.ceil(height * scale / PATCH_PX))
    return math.ceil(max_side / PATCH_PX) ** 2
