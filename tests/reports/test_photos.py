"""Report photos: only real JPEG/PNG/WebP images get in, upright, resized and without any metadata."""

from __future__ import annotations

import base64
import hashlib
import io
import random
import struct
import warnings
import zlib

import pytest
from PIL import Image, ImageCms

from kotacerdas.errors import InvalidInput
from kotacerdas.reports import photos
from kotacerdas.reports.photos import (
    FULL_MAX_SIDE,
    MAX_PHOTO_BYTES,
    MAX_PHOTOS,
    THUMB_MAX_SIDE,
    decode_base64_photo,
    process_photo,
    process_photos,
)

RED, BLUE = (220, 20, 20), (20, 20, 220)
MAKE, MODEL, TAKEN = "AcmePhone", "Model X-1000", "2026:11:02 10:11:12"
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><exif:GPSLatitude>3,17.7S</exif:GPSLatitude></rdf:RDF></x:xmpmeta>'


def encoded(image: Image.Image, fmt: str, **params) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **params)
    return out.getvalue()


def two_halves(width: int, height: int) -> Image.Image:
    """Red on the left half, blue on the right: shows which way the image was turned."""
    image = Image.new("RGB", (width, height), BLUE)
    image.paste(RED, (0, 0, width // 2, height))
    return image


def exif_with_gps(orientation: int = 6) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = MAKE
    exif[0x0110] = MODEL
    exif[0x0132] = TAKEN
    exif[0x0112] = orientation
    gps = exif.get_ifd(0x8825)
    gps[1] = "S"
    gps[2] = (3.0, 17.0, 42.5)
    gps[3] = "E"
    gps[4] = (102.0, 52.0, 11.25)
    return exif


def jpeg(width: int = 400, height: int = 300, **params) -> bytes:
    return encoded(two_halves(width, height), "JPEG", quality=90, **params)


def app_segments(data: bytes) -> list[int]:
    """The markers of every segment before the image data (APPn, COM, DQT, SOF…) of a JPEG."""
    assert data[:2] == b"\xff\xd8"
    markers, position = [], 2
    while position < len(data):
        assert data[position] == 0xFF
        marker = data[position + 1]
        if marker == 0xDA:  # start of scan: the image data follows
            break
        length = struct.unpack(">H", data[position + 2 : position + 4])[0]
        markers.append(marker)
        position += 2 + length
    return markers


def assert_no_metadata(data: bytes) -> None:
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    assert image.mode == "RGB"
    assert not image.getexif()
    for key in ("exif", "xmp", "icc_profile", "comment", "photoshop", "adobe", "mp"):
        assert key not in image.info
    markers = app_segments(data)
    # Only APP0 (JFIF) among the application segments, and no comment (COM, 0xFE).
    assert [m for m in markers if 0xE0 <= m <= 0xEF] == [0xE0]
    assert 0xFE not in markers
    for secret in (b"Exif", b"xmpmeta", b"ICC_PROFILE", b"rumah", MAKE.encode(), MODEL.encode(), TAKEN.encode()):
        assert secret not in data


def refused(data: bytes, reason: str, **kwargs) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        process_photo(data, **kwargs)
    assert caught.value.errors[0]["reason"] == reason, caught.value.errors
    assert caught.value.detail
    return caught.value


def png_of_size(width: int, height: int) -> bytes:
    """A valid one-colour 1-bit PNG of any size, made without holding its pixels in memory (a few kB)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = b"\x00" * (1 + (width + 7) // 8)
    compressor = zlib.compressobj(6)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def jpeg_claiming_size(width: int, height: int) -> bytes:
    """A small JPEG whose frame header claims another size (what a crafted file does)."""
    data = bytearray(jpeg(16, 16))
    for sof in (b"\xff\xc0", b"\xff\xc2"):
        position = data.find(sof)
        if position != -1:
            struct.pack_into(">HH", data, position + 5, height, width)
            return bytes(data)
    raise AssertionError("no frame header")


# --- what comes out -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("with_icc", [False, True], ids=["no-icc", "icc"])
def test_exif_gps_and_xmp_are_stripped_and_the_orientation_applied(with_icc):
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    metadata = {"exif": exif_with_gps(orientation=6).tobytes(), "xmp": XMP, "comment": b"rumah pelapor"}
    source = jpeg(400, 200, **metadata, **({"icc_profile": srgb} if with_icc else {}))
    assert b"Exif" in source and MAKE.encode() in source and b"xmpmeta" in source

    photo = process_photo(source)

    # Orientation 6: the camera was turned a quarter clockwise; the stored 400×200 shows as 200×400.
    assert (photo.width, photo.height) == (200, 400)
    assert_no_metadata(photo.full)
    assert_no_metadata(photo.thumb)
    image = Image.open(io.BytesIO(photo.full)).convert("RGB")
    assert image.size == (200, 400)
    # The stored left half (red) is the top once upright.
    top, bottom = image.getpixel((100, 50)), image.getpixel((100, 350))
    assert top[0] > 150 > top[2] and bottom[2] > 150 > bottom[0]
    assert photo.content_type == "image/jpeg"
    assert photo.sha256 == hashlib.sha256(photo.full).hexdigest()


@pytest.mark.parametrize(("orientation", "size"), [(1, (400, 200)), (3, (400, 200)), (8, (200, 400))])
def test_other_orientations(orientation, size):
    photo = process_photo(jpeg(400, 200, exif=exif_with_gps(orientation).tobytes()))
    assert (photo.width, photo.height) == size
    assert_no_metadata(photo.full)


def test_png_with_alpha_is_flattened_on_white():
    image = Image.new("RGBA", (300, 200), (0, 0, 0, 0))
    image.paste((0, 128, 0, 255), (0, 0, 150, 200))
    photo = process_photo(encoded(image, "PNG"))
    assert (photo.width, photo.height) == (300, 200)
    assert_no_metadata(photo.full)
    out = Image.open(io.BytesIO(photo.full))
    assert all(channel > 240 for channel in out.getpixel((250, 100)))  # was transparent
    assert out.getpixel((50, 100))[1] > 100  # was green


def test_png_exif_is_stripped_and_applied_too():
    photo = process_photo(encoded(two_halves(400, 200), "PNG", exif=exif_with_gps(orientation=8).tobytes()))
    assert (photo.width, photo.height) == (200, 400)
    assert_no_metadata(photo.full)


@pytest.mark.parametrize("params", [{"quality": 80}, {"lossless": True}])
def test_webp_is_accepted(params):
    image = two_halves(500, 250).convert("RGBA")
    photo = process_photo(encoded(image, "WEBP", exif=exif_with_gps(orientation=1).tobytes(), **params))
    assert (photo.width, photo.height) == (500, 250)
    assert_no_metadata(photo.full)


def test_palette_and_greyscale_images():
    assert process_photo(encoded(two_halves(64, 32).convert("P"), "PNG")).width == 64
    assert process_photo(encoded(Image.new("L", (64, 32), 90), "JPEG")).height == 32
    grey16 = Image.new("I;16", (64, 32), 40000)
    out = Image.open(io.BytesIO(process_photo(encoded(grey16, "PNG")).full))
    assert 140 < out.getpixel((10, 10))[0] < 170  # 40000/65535 of white, not clipped to white


@pytest.mark.parametrize(
    ("width", "height", "fmt", "expected"),
    [
        (4000, 3000, "JPEG", (1600, 1200)),
        (3000, 4000, "PNG", (1200, 1600)),
        (1601, 10, "PNG", (1600, 10)),
        (300, 200, "JPEG", (300, 200)),  # never enlarged
    ],
)
def test_resize_keeps_the_aspect_ratio(width, height, fmt, expected):
    photo = process_photo(encoded(two_halves(width, height), fmt))
    assert (photo.width, photo.height) == expected
    assert max(photo.width, photo.height) <= FULL_MAX_SIDE
    assert max(photo.thumb_width, photo.thumb_height) <= THUMB_MAX_SIDE
    assert abs(photo.thumb_width / photo.thumb_height - width / height) < 0.05 * width / height
    thumb = Image.open(io.BytesIO(photo.thumb))
    assert thumb.size == (photo.thumb_width, photo.thumb_height)
    full = Image.open(io.BytesIO(photo.full))
    assert full.size == (photo.width, photo.height)


def test_a_48_megapixel_phone_photo_is_accepted():
    # Above MAX_PIXELS, but a JPEG is decoded at a reduced scale.
    photo = process_photo(encoded(Image.new("L", (8000, 6000), 128), "JPEG", quality=50))
    assert (photo.width, photo.height) == (1600, 1200)


# --- what is refused ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(encoded(Image.new("RGB", (40, 40), RED), "GIF"), id="gif"),
        pytest.param(encoded(Image.new("RGB", (40, 40), RED), "BMP"), id="bmp"),
        pytest.param(encoded(Image.new("RGB", (40, 40), RED), "TIFF"), id="tiff"),
        pytest.param(
            b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect/></svg>', id="svg"
        ),
        # What a browser sends for a file named x.jpg is its bytes; the name and type are never looked at.
        pytest.param(b"<!DOCTYPE html><html><script>alert(document.cookie)</script></html>", id="html-named-jpg"),
        pytest.param(b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n%%EOF\n", id="pdf"),
        pytest.param(b"just some text in a file called photo.jpg\n", id="text"),
        pytest.param(random.Random(7).randbytes(50_000), id="random"),
        pytest.param(b"RIFF\x10\x00\x00\x00WAVEfmt ", id="wav"),
    ],
)
def test_anything_but_jpeg_png_webp_is_not_an_image(data):
    error = refused(data, "not_an_image", field="photo")
    assert error.errors[0]["field"] == "photo"
    assert "JPEG" in error.detail


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(jpeg(800, 600)[:3000], id="truncated-jpeg"),
        pytest.param(encoded(two_halves(300, 300), "PNG")[:400], id="truncated-png"),
        pytest.param(encoded(two_halves(300, 300), "WEBP")[:300], id="truncated-webp"),
        pytest.param(b"\xff\xd8\xff\xe0" + random.Random(3).randbytes(5000), id="jpeg-magic-then-junk"),
        pytest.param(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, id="png-magic-then-zeros"),
    ],
)
def test_damaged_images_are_refused(data):
    refused(data, "corrupt_image")


def test_too_large_in_bytes():
    data = b"\xff\xd8\xff" + b"\x00" * (11 * 1024 * 1024)
    error = refused(data, "too_large")
    assert "10 MB" in error.detail
    refused(b"\xff\xd8\xff" + b"\x00" * (MAX_PHOTO_BYTES - 2), "too_large")


def test_decompression_bombs_are_refused_as_too_many_pixels():
    bomb = png_of_size(20000, 20000)
    assert len(bomb) < 200_000
    error = refused(bomb, "too_many_pixels")
    assert "40" in error.detail
    # Above our cap but below Pillow's own threshold.
    refused(png_of_size(7000, 6000), "too_many_pixels")
    # Crafted JPEG headers: too many pixels declared, and a shape that cannot be decoded at a reduced scale.
    refused(jpeg_claiming_size(9000, 9000), "too_many_pixels")
    refused(jpeg_claiming_size(65000, 1000), "too_many_pixels")


def test_pillows_bomb_warning_counts_as_too_many_pixels():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        refused(png_of_size(10000, 10000), "too_many_pixels")


# --- several photos -----------------------------------------------------------------------------------------------


def test_process_photos_skips_empty_uploads_and_keeps_the_order():
    small = jpeg(100, 50)
    tall = encoded(two_halves(50, 100), "PNG")
    result = process_photos([b"", small, b"", tall], field="photos")
    assert [(p.width, p.height) for p in result] == [(100, 50), (50, 100)]
    assert process_photos([]) == []
    assert len(process_photos([small] * MAX_PHOTOS)) == MAX_PHOTOS


def test_more_than_three_photos_are_refused():
    with pytest.raises(InvalidInput) as caught:
        process_photos([jpeg(20, 20)] * (MAX_PHOTOS + 1), field="photos")
    assert caught.value.errors == [{"field": "photos", "reason": "too_many", "limit": MAX_PHOTOS}]
    assert "3" in caught.value.detail


def test_one_bad_photo_fails_the_whole_set_and_names_its_place():
    with pytest.raises(InvalidInput) as caught:
        process_photos([jpeg(20, 20), b"", b"GIF89a not really"], field="photos")
    assert caught.value.errors == [{"field": "photos", "reason": "not_an_image", "index": 2}]
    # Sizes are checked before any photo is decoded.
    with pytest.raises(InvalidInput) as caught:
        process_photos([b"junk", b"\xff\xd8\xff" + b"\x00" * MAX_PHOTO_BYTES])
    assert caught.value.errors[0]["reason"] == "too_large"
    assert caught.value.errors[0]["index"] == 1


# --- base64 for the JSON API --------------------------------------------------------------------------------------


def test_base64_plain_and_data_url():
    data = jpeg(40, 30)
    text = base64.b64encode(data).decode()
    assert decode_base64_photo(text, field="media") == data
    assert decode_base64_photo(f"data:image/jpeg;base64,{text}", field="media") == data
    assert decode_base64_photo(f"DATA:image/png;name=a.png;BASE64,{text}", field="media") == data
    # Line breaks (MIME), missing padding and the URL-safe alphabet are tolerated.
    wrapped = "\r\n".join(text[i : i + 76] for i in range(0, len(text), 76))
    assert decode_base64_photo(wrapped, field="media") == data
    assert decode_base64_photo(text.rstrip("="), field="media") == data
    assert decode_base64_photo(base64.urlsafe_b64encode(data).decode(), field="media") == data
    assert decode_base64_photo("", field="media") == b""
    assert process_photo(decode_base64_photo(text, field="media")).width == 40


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not base64 at all!", "not_base64"),
        ("QUJD*RA==", "not_base64"),
        ("A", "not_base64"),
        ("data:image/jpeg,rawbytes", "not_base64"),
        ("data:image/jpeg;base64", "not_base64"),
        ("data:text/html;base64,PGh0bWw+", "not_an_image"),
        ("data:image/svg+xml;base64,PHN2Zz4=", None),  # passes here; refused by content in process_photo
    ],
)
def test_bad_base64(text, reason):
    if reason is None:
        refused(decode_base64_photo(text, field="media"), "not_an_image")
        return
    with pytest.raises(InvalidInput) as caught:
        decode_base64_photo(text, field="media")
    assert caught.value.errors == [{"field": "media", "reason": reason}]


def test_oversized_base64_is_refused_before_decoding():
    # Not even valid base64: the size check comes first, so this is "too large" and never decoded.
    huge = "!" * (photos._MAX_BASE64_TEXT + 1)
    with pytest.raises(InvalidInput) as caught:
        decode_base64_photo(huge, field="media")
    assert caught.value.errors[0]["reason"] == "too_large"
    assert "10 MB" in caught.value.detail
    # Valid base64 just over the limit once decoded.
    just_over = base64.b64encode(b"\xff\xd8\xff" + b"\x00" * (MAX_PHOTO_BYTES - 2)).decode()
    with pytest.raises(InvalidInput) as caught:
        decode_base64_photo(just_over, field="media")
    assert caught.value.errors[0]["reason"] == "too_large"
    # And exactly at the limit it decodes.
    at_limit = base64.b64encode(b"\x00" * MAX_PHOTO_BYTES).decode()
    assert len(decode_base64_photo(f"data:image/jpeg;base64,{at_limit}", field="media")) == MAX_PHOTO_BYTES
