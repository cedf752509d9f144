"""What is sent for one sample, and its fingerprint (the journal's cache key).

The chat messages are the release's prompt exactly: an optional system message, then one user message with the
images (the release's own bytes as data URLs with their true media type, read from the bytes) before the text, or
after it when the sample says so. With `image_max_side`, larger images are sent reduced (JPEG) instead. The
fingerprint hashes the model, the sampling parameters of the attempt, the image size limit, the system message,
the prompt, the image order, the SHA-256 of every image and the attempt number: the same question to the same
model with the same parameters is never asked twice.
"""

from __future__ import annotations

import base64
import hashlib
import io
from typing import Any

from retinal_reason_data.evaluation.samples import Sample, SampleImage
from retinal_reason_data.text import stable_hash

FINGERPRINT_VERSION = "eval-v1"
REDUCED_JPEG_QUALITY = 90


class ImageUnreadable(ValueError):
    """An image of a sample that cannot be decoded; the message names the image."""


def image_digests(sample: Sample) -> list[str]:
    return [hashlib.sha256(image.data).hexdigest() for image in sample.images]


def fingerprint(
    model: str, params: dict[str, Any], sample: Sample, digests: list[str], attempt: int, image_max_side: int | None
) -> str:
    """Identity of one request: model, sent parameters, image size limit, messages (by image hash) and attempt."""
    return stable_hash(
        FINGERPRINT_VERSION,
        model,
        sorted(params.items()),
        image_max_side,
        sample.system,
        sample.prompt,
        sample.images_first,
        *digests,
        attempt,
        length=32,
    )


def image_url(image: SampleImage, max_side: int | None = None) -> str:
    """A data URL of the image: its own bytes and media type, or a JPEG of at most `max_side` pixels when it is
    larger. Raises ImageUnreadable when the bytes are no image Pillow can identify (a PNG is also checked whole)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(image.data)) as opened:
            media = Image.MIME.get(opened.format or "", "")
            size = opened.size
            opened.verify()  # PNG: every chunk's CRC; a truncated or corrupted PNG fails here
    except UnidentifiedImageError:
        raise ImageUnreadable(f"image {image.path or '(unnamed)'}: not an image file (no format recognised)") from None
    except (OSError, SyntaxError, ValueError) as exc:  # truncated, a chunk that fails its CRC, a broken header
        raise ImageUnreadable(f"image {image.path or '(unnamed)'}: cannot be decoded ({exc})") from None
    if not media.startswith("image/"):
        raise ImageUnreadable(f"image {image.path or '(unnamed)'}: no media type for format {opened.format}")
    if max_side is not None and max(size) > max_side:
        return _reduced(image, max_side)
    return f"data:{media};base64," + base64.b64encode(image.data).decode()


def _reduced(image: SampleImage, max_side: int) -> str:
    from PIL import Image

    from retinal_reason_data.ingest.imaging import ImageError, open_image

    try:
        decoded = open_image(image.data, image.path or "image", reduce_to=max_side)
        decoded.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        decoded.convert("RGB").save(buffer, format="JPEG", quality=REDUCED_JPEG_QUALITY)
    except (ImageError, OSError, ValueError) as exc:
        raise ImageUnreadable(f"image {image.path or '(unnamed)'}: {exc}") from None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def build_messages(sample: Sample, max_side: int | None = None) -> list[dict[str, Any]]:
    """The chat messages of a sample (OpenAI-compatible content parts)."""
    images = [{"type": "image_url", "image_url": {"url": image_url(image, max_side)}} for image in sample.images]
    text = [{"type": "text", "text": sample.prompt}]
    messages: list[dict[str, Any]] = [{"role": "system", "content": sample.system}] if sample.system else []
    messages.append({"role": "user", "content": images + text if sample.images_first else text + images})
    return messages


def prompt_tokens_estimate(sample: Sample) -> int:
    """About the prompt tokens of a sample before a reply says (for a tokens-per-minute limit)."""
    return (len(sample.system) + len(sample.prompt)) // 4 + 800 * len(sample.images)
