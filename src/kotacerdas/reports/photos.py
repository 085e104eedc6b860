"""Photos of citizen reports: check what was sent, keep it upright, strip every piece of metadata, re-encode.

The content is sniffed, never the file name or the declared content type: only JPEG, PNG and WebP get through,
and what comes out is always a freshly encoded JPEG without EXIF, GPS, XMP, ICC profile or comment (UU 27/2022:
a photo's GPS position or camera serial must never reach a public page). Everything here is plain CPU work on
bytes; a caller that wants to keep its event loop free runs it in a thread pool.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from functools import cache

from PIL import Image, ImageOps

from kotacerdas.errors import InvalidInput
from kotacerdas.i18n import _

MAX_PHOTO_BYTES = 10 * 1024 * 1024
MAX_PHOTOS = 3
FULL_MAX_SIDE = 1600
THUMB_MAX_SIDE = 320
# Decompression bombs: a one-colour PNG of 20000×20000 is a few kilobytes but 1.6 GB once decoded. PNG and WebP
# are decoded at full size, so their pixels are capped at 40 megapixels (160 MB as RGBA, the worst case).
MAX_PIXELS = 40_000_000
# A JPEG is decoded at 1/2, 1/4 or 1/8 of its size (DCT scaling) when it is larger than needed, so the pixels in
# memory stay small; the higher cap lets through the full-resolution mode of 48/50/64-megapixel phone cameras,
# common in Indonesia (64 MP is 9248×6936). It stays below Pillow's own bomb threshold (89 MP), so Pillow never
# warns about an image we would accept. The decoded size is still held to MAX_PIXELS (an extreme aspect ratio
# cannot be scaled down).
MAX_JPEG_PIXELS = 80_000_000
FULL_QUALITY = 82
THUMB_QUALITY = 78
CONTENT_TYPE = "image/jpeg"

_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Base64 text of a MAX_PHOTO_BYTES file, plus room for line breaks (MIME wraps at 76 characters) and a data URL
# header: anything longer is refused before it is copied or decoded.
_MAX_BASE64_CHARS = 4 * ((MAX_PHOTO_BYTES + 2) // 3)
_MAX_BASE64_TEXT = _MAX_BASE64_CHARS + _MAX_BASE64_CHARS // 38 + 1024
_DATA_URL = re.compile(r"data:(?P<type>[^;,]*)(?P<params>(?:;[^;,]*)*),", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")
_URLSAFE = str.maketrans("-_", "+/")


@dataclass(frozen=True)
class ProcessedPhoto:
    """A photo ready to store: a metadata-free JPEG, its thumbnail, their sizes and the JPEG's SHA-256."""

    full: bytes = dataclass_field(repr=False)
    thumb: bytes = dataclass_field(repr=False)
    width: int
    height: int
    thumb_width: int
    thumb_height: int
    sha256: str
    content_type: str = CONTENT_TYPE


def sniff_format(data: bytes) -> str | None:
    """Pillow's name of the format the bytes are in (`JPEG`, `PNG`, `WEBP`), or None for anything else."""
    if data.startswith(_JPEG_MAGIC):
        return "JPEG"
    if data.startswith(_PNG_MAGIC):
        return "PNG"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def process_photo(data: bytes, *, field: str = "photos", index: int | None = None) -> ProcessedPhoto:
    """Check one uploaded photo and re-encode it: upright, RGB, at most FULL_MAX_SIDE, no metadata."""
    if len(data) > MAX_PHOTO_BYTES:
        raise _too_large(field, index)
    kind = sniff_format(data)
    if kind is None:
        raise _not_an_image(field, index)
    full, icc_profile = _decode(data, kind, field=field, index=index)
    full.thumbnail((FULL_MAX_SIDE, FULL_MAX_SIDE), Image.Resampling.LANCZOS)
    full = _to_srgb(full, icc_profile)
    thumb = full.copy()
    thumb.thumbnail((THUMB_MAX_SIDE, THUMB_MAX_SIDE), Image.Resampling.LANCZOS)
    full_bytes = _encode(full, quality=FULL_QUALITY)
    return ProcessedPhoto(
        full=full_bytes,
        thumb=_encode(thumb, quality=THUMB_QUALITY),
        width=full.width,
        height=full.height,
        thumb_width=thumb.width,
        thumb_height=thumb.height,
        sha256=hashlib.sha256(full_bytes).hexdigest(),
    )


def process_photos(items: list[bytes], *, field: str = "photos") -> list[ProcessedPhoto]:
    """Check and re-encode every photo of one report before anything is stored; empty uploads are skipped."""
    present = [(index, data) for index, data in enumerate(items) if data]
    if len(present) > MAX_PHOTOS:
        raise InvalidInput(
            _("Send at most %(count)s photos.") % {"count": MAX_PHOTOS},
            errors=[{"field": field, "reason": "too_many", "limit": MAX_PHOTOS}],
        )
    # Sizes first: one oversized file is refused before any CPU is spent decoding the others.
    for index, data in present:
        if len(data) > MAX_PHOTO_BYTES:
            raise _too_large(field, index)
    return [process_photo(data, field=field, index=index) for index, data in present]


def decode_base64_photo(text: str, *, field: str) -> bytes:
    """The bytes of a photo sent as base64 text, plain or as a `data:image/...;base64,` URL; size checked first."""
    # The length of the text bounds the decoded size: a 1 GB string is refused here, before any copy or decoding.
    if len(text) > _MAX_BASE64_TEXT:
        raise _too_large(field, None)
    payload = text.strip()
    if payload[:5].lower() == "data:":
        header = _DATA_URL.match(payload)
        if header is None:
            raise _not_base64(field)
        params = [part.strip().lower() for part in header["params"].split(";")]
        if not header["type"].strip().lower().startswith("image/"):
            raise _not_an_image(field, None)
        if "base64" not in params:
            raise _not_base64(field)
        payload = payload[header.end() :]
    payload = _WHITESPACE.sub("", payload)
    if not payload:
        return b""
    if len(payload) > _MAX_BASE64_CHARS:
        raise _too_large(field, None)
    if "-" in payload or "_" in payload:
        payload = payload.translate(_URLSAFE)
    # Some clients leave the padding out; base64 itself does not need it.
    payload += "=" * (-len(payload) % 4)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise _not_base64(field) from None
    if len(data) > MAX_PHOTO_BYTES:
        raise _too_large(field, None)
    return data


# --- decoding and encoding ----------------------------------------------------------------------------------------


def _decode(data: bytes, kind: str, *, field: str, index: int | None) -> tuple[Image.Image, bytes | None]:
    """The first frame, upright and RGB, with its ICC profile; bad, damaged and oversized images are InvalidInput."""
    try:
        image = Image.open(io.BytesIO(data), formats=[kind])
        # MPO (the multi-picture JPEG of many phones) opens through the JPEG plugin.
        if image.format not in (kind, "MPO"):
            raise _not_an_image(field, index)
        limit = MAX_JPEG_PIXELS if kind == "JPEG" else MAX_PIXELS
        if image.width * image.height > limit:
            raise _too_many_pixels(field, index, limit)
        if kind == "JPEG":
            # Decode at the smallest DCT scale that still gives FULL_MAX_SIDE on both sides, upright or turned.
            image.draft(None, (FULL_MAX_SIDE, FULL_MAX_SIDE))
            if image.width * image.height > MAX_PIXELS:
                raise _too_many_pixels(field, index, MAX_PIXELS)
        image.load()
        icc_profile = image.info.get("icc_profile")
        image = _upright(image)
        rgb = _to_rgb(image)
    except InvalidInput:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_many_pixels(field, index, MAX_JPEG_PIXELS if kind == "JPEG" else MAX_PIXELS) from None
    except MemoryError:
        raise
    except Exception:
        # Pillow reports damaged data with OSError, SyntaxError, ValueError, EOFError, struct.error and more; at
        # the edge of untrusted input they all mean the same thing to the user.
        raise _corrupt(field, index) from None
    return rgb, icc_profile if isinstance(icc_profile, bytes) else None


def _upright(image: Image.Image) -> Image.Image:
    """The image turned as its EXIF orientation says, so that it shows upright once the metadata is gone."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception:
        # A malformed EXIF block does not make the photo unusable; it stays as the camera stored it.
        return image


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB pixels; transparency is flattened on white (a PNG screenshot's clear background stays light)."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L"):
        # 16-bit greyscale PNG: scale to 8 bits rather than clip (clipping turns almost everything white).
        image = image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    has_alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
    if not has_alpha:
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    background = Image.new("RGB", rgba.size, (255, 255, 255))
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def _to_srgb(image: Image.Image, icc_profile: bytes | None) -> Image.Image:
    """Pixels converted from the photo's colour profile to sRGB, so the profile can be dropped; as is on failure."""
    if not icc_profile:
        return image
    try:
        from PIL import ImageCms

        source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        converted = ImageCms.profileToProfile(image, source, _srgb_profile(), outputMode="RGB")
    except Exception:
        # A broken or non-RGB profile (or Pillow built without LittleCMS): the pixels are used as they are.
        return image
    return converted if converted is not None else image


@cache
def _srgb_profile():
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _encode(image: Image.Image, *, quality: int) -> bytes:
    """A progressive, optimised JPEG with no metadata at all (no EXIF, XMP, ICC profile or comment)."""
    # Pillow copies some of `info` into the file (a JPEG comment, for one): start from nothing.
    image.info = {}
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality, optimize=True, progressive=True, exif=b"", icc_profile=None)
    return out.getvalue()


# --- errors -------------------------------------------------------------------------------------------------------


def _error(field: str, index: int | None, reason: str, **extra) -> dict:
    error = {"field": field, "reason": reason, **extra}
    if index is not None:
        error["index"] = index
    return error


def _too_large(field: str, index: int | None) -> InvalidInput:
    limit_mb = MAX_PHOTO_BYTES // (1024 * 1024)
    return InvalidInput(
        _("The photo is larger than %(limit)s MB; please send a smaller one.") % {"limit": limit_mb},
        errors=[_error(field, index, "too_large", limit=MAX_PHOTO_BYTES)],
    )


def _not_an_image(field: str, index: int | None) -> InvalidInput:
    return InvalidInput(
        _("The file is not a photo: send a JPEG, PNG or WebP image."),
        errors=[_error(field, index, "not_an_image")],
    )


def _corrupt(field: str, index: int | None) -> InvalidInput:
    return InvalidInput(
        _("The photo could not be read: it is damaged or incomplete. Please choose it again."),
        errors=[_error(field, index, "corrupt_image")],
    )


def _too_many_pixels(field: str, index: int | None, limit: int) -> InvalidInput:
    return InvalidInput(
        _("The photo has too many pixels (more than %(limit)s megapixels); please send a smaller one.")
        % {"limit": limit // 1_000_000},
        errors=[_error(field, index, "too_many_pixels", limit=limit)],
    )


def _not_base64(field: str) -> InvalidInput:
    return InvalidInput(
        _("The photo is not valid base64 data."),
        errors=[_error(field, None, "not_base64")],
    )
