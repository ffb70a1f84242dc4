"""Images for GigaChat's vision models: each uploaded with `POST /files`, referenced by its id in its
message's `attachments`, and deleted after the answer (gigachat.md §5.2 and §5.7: SDK-0.2.3 `api/files.py`;
one image per message, at most 10 per request; the deletion is `POST /files/{id}/delete`).

A `data:` URL's image counts against XROUTER_MAX_BODY_BYTES like the rest of the request; an http(s) URL is
fetched through the guarded resolver (apps/common/fetch.py: public addresses only, no redirects, 5 s) up to
MAX_URL_BYTES."""

import base64
import re
from dataclasses import dataclass

from apps.common.fetch import UnsafeURL, fetch_public

from .base import ProviderError
from .transport import unsupported

NAME = "GigaChat"
# REF-CHAT: the GigaChat-2 Pro and Max models take images. Guess: the first generation's Pro and Max too.
VISION_MODELS = ("GigaChat-2-Pro", "GigaChat-2-Max", "GigaChat-Pro", "GigaChat-Max")
IMAGE_TYPES = {"image/jpeg", "image/png", "image/tiff", "image/bmp"}  # Guess: the formats GigaChat's docs list
MAX_IMAGES = 10  # per request (§5.2)
MAX_URL_BYTES = 10 * 1024 * 1024  # an image fetched from an http(s) URL
FILE_ID = re.compile(r"[A-Za-z0-9-]{1,64}")  # what an id must look like before it goes into a URL path


@dataclass(frozen=True, slots=True)
class Image:
    message: int  # the index of its (user) message
    url: str

    @property
    def where(self) -> str:
        return f"messages[{self.message}].content"


def images_of(messages: list[dict], model: str) -> list[Image]:
    """The request's images, checked against GigaChat's rules before anything is uploaded."""
    found = []
    for i, message in enumerate(messages):
        content = message.get("content")
        if not isinstance(content, list):
            continue
        urls = [p["image_url"]["url"] for p in content if p.get("type") == "image_url"]
        if not urls:
            continue
        if message.get("role") != "user":
            raise unsupported(NAME, f"messages[{i}].content", "images are taken in user messages only")
        if len(urls) > 1:
            raise unsupported(NAME, f"messages[{i}].content", "GigaChat takes one image per message")
        found.append(Image(i, urls[0]))
    if found and not model.startswith(VISION_MODELS):
        raise unsupported(NAME, found[0].where, f"the model {model} does not take images (GigaChat-2-Pro and -Max do)")
    if len(found) > MAX_IMAGES:
        raise unsupported(NAME, "messages", f"at most {MAX_IMAGES} images per request")
    return found


async def image_bytes(image: Image) -> tuple[bytes, str]:
    """The image's bytes and MIME type, from its data: URL or fetched from its http(s) URL."""
    url = image.url
    if url.startswith("data:"):
        header, comma, data = url[5:].partition(",")
        if not comma or not header.endswith(";base64"):
            raise _bad(image, "a data: URL must carry base64 (data:image/png;base64,...)")
        mime = header[: -len(";base64")].lower()
        try:
            raw = base64.b64decode(data, validate=True)
        except ValueError:
            raise _bad(image, "the data: URL's base64 does not decode") from None
    elif url.startswith(("https://", "http://")):
        try:
            raw, mime = await fetch_public(url, MAX_URL_BYTES)
        except UnsafeURL as exc:
            raise _bad(image, f"the image URL cannot be used: {exc}") from None
    else:
        raise _bad(image, "an image is a data: URL or an https:// URL")
    if mime not in IMAGE_TYPES:
        raise _bad(image, f"{mime or 'an unknown type'} is not an image type GigaChat takes (JPEG, PNG, TIFF, BMP)")
    if not raw:
        raise _bad(image, "the image is empty")
    return raw, mime


def _bad(image: Image, why: str) -> ProviderError:
    error = ProviderError(f"{NAME}: {image.where}: {why}", status=400, kind="invalid_image")
    error.param = image.where
    return error
