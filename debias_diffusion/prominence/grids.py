"""Image grids with the detections drawn, so a person can see why a number is what it is.

One grid per object set (and per model / template unless they are an axis of the layout): by default rows
are prompt orderings and columns are seeds. Each cell shows the image with every detected object's box,
label and score in its prompt position's colour, and a caption listing the prompt order with each
object's score and area (or "not detected").
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

from ..atomic_io import atomic_save_image
from ..errors import ProminenceDataError
from .measurement import ProminenceRecord
from .metrics import records_by_image

__all__ = [
    "LAYOUT_FIELDS",
    "POSITION_COLOURS",
    "GridGeometry",
    "draw_detections",
    "image_grid",
    "image_opener",
    "position_colour",
    "write_image_grids",
]

POSITION_COLOURS: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
)
"""Colour of prompt position k is ``POSITION_COLOURS[(k - 1) % 10]`` (matplotlib's tab10)."""

LAYOUT_FIELDS = ("ordering", "seed", "model", "template")
"""Record fields a grid's rows or columns can run over; the others (and the object set) are fixed per grid."""

ImageOpener = Callable[[str], Image.Image]


def position_colour(position: int) -> tuple[int, int, int]:
    """Colour used for the object named at 1-based ``position``."""
    return POSITION_COLOURS[(position - 1) % len(POSITION_COLOURS)]


def image_opener(root: str | Path) -> ImageOpener:
    """Open a record's ``image`` (a path relative to the run's output folder ``root``) as RGB."""
    root = Path(root)

    def open_image(relative: str) -> Image.Image:
        with Image.open(root / relative) as image:
            return image.convert("RGB")

    return open_image


@dataclass(frozen=True)
class GridGeometry:
    """Where things go in a grid: a title band, then ``rows x columns`` cells separated by ``padding``.

    A cell is a ``cell_size`` square holding the image (scaled to fit, centred) above a caption band of
    ``caption_height`` pixels.
    """

    rows: int
    columns: int
    cell_size: int
    caption_height: int
    title_height: int
    padding: int

    @property
    def size(self) -> tuple[int, int]:
        width = self.columns * (self.cell_size + self.padding) + self.padding
        height = self.title_height + self.rows * (self.cell_size + self.caption_height + self.padding) + self.padding
        return width, height

    def cell_origin(self, row: int, column: int) -> tuple[int, int]:
        """Top-left pixel of the image square of cell (``row``, ``column``)."""
        x = self.padding + column * (self.cell_size + self.padding)
        y = self.title_height + self.padding + row * (self.cell_size + self.caption_height + self.padding)
        return x, y


def draw_detections(
    image: Image.Image,
    records: Sequence[ProminenceRecord],
    *,
    scale: float = 1.0,
    font_size: int = 12,
    line_width: int = 3,
) -> Image.Image:
    """A copy of ``image`` with each detected object's box, ``"<position> <object> <score>"`` label, in its colour.

    Boxes are in the pixels of the measured image times ``scale`` (pass the resize factor when ``image`` is a
    resized copy); records of absent objects (or without a box) draw nothing.
    """
    out = image.convert("RGB")
    draw = ImageDraw.Draw(out)
    font = _font(font_size)
    for record in sorted(records, key=lambda r: r.position):
        if not record.present or record.box is None:
            continue
        colour = position_colour(record.position)
        x0, y0, x1, y1 = (coordinate * scale for coordinate in record.box)
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=line_width)
        label = f"{record.position} {record.object} {record.score:.2f}"
        left, top, right, bottom = draw.textbbox((x0, y0), label, font=font)
        draw.rectangle((left - 1, top - 1, right + 1, bottom + 1), fill=colour)
        draw.text((x0, y0), label, fill=(255, 255, 255), font=font)
    return out


def image_grid(
    records: Sequence[ProminenceRecord],
    open_image: ImageOpener,
    *,
    rows: str = "ordering",
    columns: str = "seed",
    cell_size: int = 256,
    font_size: int = 12,
    padding: int = 8,
) -> Image.Image:
    """One grid of the images of ``records``: ``rows`` and ``columns`` are two of :data:`LAYOUT_FIELDS`.

    Every other field and the object set must be the same for all records, and each (row, column) must hold
    exactly one image. Row and column values keep their order of first appearance (seeds are sorted). An image
    that cannot be opened shows as a grey cell saying so. See :class:`GridGeometry` for the layout; caption
    lines are ``font_size + 4`` pixels: one for the cell's row / column values, then one per object.
    """
    if rows not in LAYOUT_FIELDS or columns not in LAYOUT_FIELDS or rows == columns:
        raise ProminenceDataError(
            f"rows and columns must be two different fields of {LAYOUT_FIELDS}, got {rows!r}, {columns!r}"
        )
    images = records_by_image(records)
    fixed = [name for name in ("model", "object_set", "template", *LAYOUT_FIELDS) if name not in (rows, columns)]
    fixed = list(dict.fromkeys(fixed))
    first = next(iter(images.values()))[0]
    for image_records in images.values():
        for name in fixed:
            if getattr(image_records[0], name) != getattr(first, name):
                raise ProminenceDataError(
                    f"a grid with rows = {rows} and columns = {columns} needs one {name} for all its images, got "
                    f"{getattr(first, name)!r} and {getattr(image_records[0], name)!r}"
                )
    row_values = _axis_values(images, rows)
    column_values = _axis_values(images, columns)
    cells: dict[tuple[int, int], list[ProminenceRecord]] = {}
    for image_records in images.values():
        cell = (
            row_values.index(getattr(image_records[0], rows)),
            column_values.index(getattr(image_records[0], columns)),
        )
        if cell in cells:
            raise ProminenceDataError(
                f"two images fall in the same grid cell ({rows} {row_values[cell[0]]!r}, {columns} "
                f"{column_values[cell[1]]!r}): {cells[cell][0].image!r} and {image_records[0].image!r}"
            )
        cells[cell] = image_records

    line = font_size + 4
    n_objects = max(len(image_records) for image_records in images.values())
    geometry = GridGeometry(
        rows=len(row_values),
        columns=len(column_values),
        cell_size=cell_size,
        caption_height=(n_objects + 1) * line + 4,
        title_height=2 * line,
        padding=padding,
    )
    grid = Image.new("RGB", geometry.size, (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    font = _font(font_size)
    title = " | ".join(_describe(first, name) for name in fixed)
    for index, text in enumerate((title, f"rows: {rows}, columns: {columns}")):
        text = _fit(draw, text, font, geometry.size[0] - 2 * padding)
        draw.text((padding, padding // 2 + index * line), text, fill=(0, 0, 0), font=font)
    for (row, column), image_records in cells.items():
        x, y = geometry.cell_origin(row, column)
        grid.paste(_cell_image(image_records, open_image, cell_size, font_size), (x, y))
        caption_y = y + cell_size + 2
        header = f"{_describe(image_records[0], rows)} | {_describe(image_records[0], columns)}"
        draw.text((x, caption_y), _fit(draw, header, font, cell_size), fill=(0, 0, 0), font=font)
        for index, record in enumerate(image_records):
            detail = f"{record.score:.2f}, area {record.area:.3f}" if record.present else "not detected"
            text = _fit(draw, f"{record.position}. {record.object}: {detail}", font, cell_size)
            draw.text((x, caption_y + (index + 1) * line), text, fill=position_colour(record.position), font=font)
    return grid


def write_image_grids(
    records: Sequence[ProminenceRecord],
    output_dir: str | Path,
    open_image: ImageOpener,
    *,
    rows: str = "ordering",
    columns: str = "seed",
    object_sets: Collection[int] | None = None,
    cell_size: int = 256,
) -> list[Path]:
    """One PNG per grid (see :func:`image_grid`) under ``output_dir``, saved atomically; returns the paths.

    Records are split by object set and by every layout field that is neither ``rows`` nor ``columns``;
    ``object_sets`` keeps only those sets.
    """
    records_by_image(records)
    split = [name for name in LAYOUT_FIELDS if name not in (rows, columns)]
    grids: dict[tuple, list[ProminenceRecord]] = {}
    for record in records:
        if object_sets is not None and record.object_set not in object_sets:
            continue
        key = (record.object_set, *(getattr(record, name) for name in split))
        grids.setdefault(key, []).append(record)
    paths = []
    for key, grid_records in grids.items():
        name = "_".join(
            _slug(part)
            for part in (f"set{key[0]}", *(_describe_value(n, v) for n, v in zip(split, key[1:], strict=True)))
        )
        path = Path(output_dir) / f"{name}.png"
        grid = image_grid(grid_records, open_image, rows=rows, columns=columns, cell_size=cell_size)
        atomic_save_image(path, grid)
        paths.append(path)
    return paths


def _cell_image(
    records: Sequence[ProminenceRecord], open_image: ImageOpener, cell_size: int, font_size: int
) -> Image.Image:
    cell = Image.new("RGB", (cell_size, cell_size), (200, 200, 200))
    try:
        image = open_image(records[0].image)
    except OSError as error:  # FileNotFoundError and unreadable images: show it, don't lose the whole report
        draw = ImageDraw.Draw(cell)
        font = _font(font_size)
        for index, text in enumerate(("cannot open", *textwrap.wrap(records[0].image, 20), type(error).__name__)):
            draw.text(
                (4, 4 + index * (font_size + 4)), _fit(draw, text, font, cell_size - 8), fill=(0, 0, 0), font=font
            )
        return cell
    fitted = ImageOps.contain(image.convert("RGB"), (cell_size, cell_size))  # up or down, keeping the aspect
    drawn = draw_detections(fitted, records, scale=fitted.width / image.width, font_size=font_size)
    cell.paste(drawn, ((cell_size - drawn.width) // 2, (cell_size - drawn.height) // 2))
    return cell


def _axis_values(images: dict, name: str) -> list:
    values = list(dict.fromkeys(getattr(image_records[0], name) for image_records in images.values()))
    return sorted(values) if name == "seed" else values


def _describe(record: ProminenceRecord, name: str) -> str:
    return _describe_value(name, getattr(record, name))


def _describe_value(name: str, value: object) -> str:
    if name == "ordering":
        return " > ".join(value)  # type: ignore[arg-type]
    if name == "object_set":
        return f"set {value}"
    if name == "seed":
        return f"seed {value}"
    return str(value)


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, width: int) -> str:
    """``text``, cut short with ``...`` so that it is at most ``width`` pixels wide."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-") or "x"


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()
