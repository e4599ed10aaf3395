"""A plain folder of images without metadata, for ad-hoc galleries and queries.

Each image is one drawing; its patent id is the name of its parent folder relative to the root
(or the file stem for images directly in the root), so a folder per design groups its views.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from priorsight.images import ImageError, decode_image
from priorsight.records import Drawing, ItemError
from priorsight.storage import Storage, join

STAGE = "import-folder"
SOURCE = "folder"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp"}


def read_folder(src: str | Path, images_out: str | None = None, storage: Storage | None = None,
                max_pixels: int = 80_000_000) -> Iterator[Drawing | ItemError]:
    root = Path(src)
    if not root.is_dir():
        raise FileNotFoundError(f"no such directory: {root}")
    storage = storage or Storage()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            if not path.name.startswith("."):
                yield ItemError(str(path), STAGE, f"not an image file type ({path.suffix or 'no suffix'}); skipped")
            continue
        rel = path.relative_to(root)
        patent = "/".join(rel.parts[:-1]) or path.stem
        drawing_id = "/".join(rel.with_suffix("").parts)
        try:
            img = decode_image(path.read_bytes(), max_pixels=max_pixels)
        except (ImageError, OSError) as exc:
            yield ItemError(str(path), STAGE, str(exc), drawing_id=drawing_id, patent_id=patent)
            continue
        uri = str(path.resolve())
        if images_out is not None:
            uri = join(images_out, f"{drawing_id}.png")
            with storage.open_write(uri) as f:
                img.save(f, format="PNG")
        yield Drawing(drawing_id=drawing_id, patent_id=patent, image_uri=uri, source=SOURCE,
                      title=path.stem, width=img.width, height=img.height)
