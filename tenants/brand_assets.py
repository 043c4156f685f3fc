"""A reseller's logo and favicon: checked by decoding, stored in the database, served by hash.

An upload is trusted only after Pillow has decoded it: the format comes from the bytes, never
from the file name or the browser's content type, and the size and dimensions are bounded
before the pixels are read (a small file can still declare a huge image). Each image is
stored once per tenant and kind (a new upload replaces the old), and its URL carries a hash
of its bytes, so it can be cached for a year and a new logo is a new URL.

The storage interface is three functions (``save``, ``load``, ``url_of``): a file or object
store can replace the table without touching the views.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from sqlalchemy import Integer, LargeBinary, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models import IdMixin, TimestampMixin
from tenants.isolation import TenantScoped

FORMATS = {"PNG": ("image/png", "png"), "JPEG": ("image/jpeg", "jpg"),
           "WEBP": ("image/webp", "webp")}


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_side: int
    min_side: int = 16


LIMITS = {"logo": Limits(max_bytes=512 * 1024, max_side=2048),
          "favicon": Limits(max_bytes=128 * 1024, max_side=512)}


class BrandAsset(IdMixin, TenantScoped, TimestampMixin, db.Model):
    __tablename__ = "brand_assets"
    __table_args__ = (UniqueConstraint("tenant_id", "kind", name="uq_brand_assets_kind"),)

    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    content_type: Mapped[str] = mapped_column(String(32), nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    width: Mapped[int] = mapped_column(Integer, nullable=False)
    height: Mapped[int] = mapped_column(Integer, nullable=False)
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class ImageRejected(ValueError):
    """The upload is not an image we accept; the message says why in the user's words."""


@dataclass(frozen=True)
class CheckedImage:
    content_type: str
    extension: str
    width: int
    height: int
    data: bytes


def check_image(kind: str, data: bytes) -> CheckedImage:
    """Decode ``data`` and return it if it is a PNG, JPEG or WebP within ``kind``'s limits."""
    from PIL import Image, UnidentifiedImageError

    limits = LIMITS[kind]
    if not data:
        raise ImageRejected("The file is empty.")
    if len(data) > limits.max_bytes:
        raise ImageRejected(f"The file is {len(data) // 1024} KB; the limit is "
                            f"{limits.max_bytes // 1024} KB.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                fmt = image.format
                width, height = image.size
                if fmt not in FORMATS:
                    raise ImageRejected("Upload a PNG, JPEG or WebP image.")
                if max(width, height) > limits.max_side or min(width, height) < limits.min_side:
                    raise ImageRejected(
                        f"The image is {width} x {height} pixels; it must be between "
                        f"{limits.min_side} and {limits.max_side} pixels on each side.")
                image.load()  # decode every pixel: a truncated or forged file fails here
    except ImageRejected:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
            Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ImageRejected("This file is not a readable PNG, JPEG or WebP image.") from None
    content_type, extension = FORMATS[fmt]
    return CheckedImage(content_type, extension, width, height, data)


def save(kind: str, image: CheckedImage) -> BrandAsset:
    """Store ``image`` as the current tenant's ``kind``, replacing the previous one."""
    asset = db.session.scalars(select(BrandAsset).where(BrandAsset.kind == kind)).first()
    if asset is None:
        asset = BrandAsset(kind=kind)
        db.session.add(asset)
    asset.content_type = image.content_type
    asset.width, asset.height = image.width, image.height
    asset.data = image.data
    asset.sha256 = hashlib.sha256(image.data).hexdigest()
    db.session.flush()
    return asset


def load(kind: str, digest: str) -> BrandAsset | None:
    """The current tenant's ``kind`` if its hash starts with ``digest`` (an old URL: None)."""
    if kind not in LIMITS or len(digest) < 12:
        return None
    asset = db.session.scalars(select(BrandAsset).where(BrandAsset.kind == kind)).first()
    if asset is None or not asset.sha256.startswith(digest):
        return None
    return asset


def url_of(asset: BrandAsset) -> str:
    extension = next(ext for ct, ext in FORMATS.values() if ct == asset.content_type)
    return f"/brand/{asset.kind}-{asset.sha256[:16]}.{extension}"
