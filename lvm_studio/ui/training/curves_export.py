"""Writing the live curves to files: PNG (raster, at a chosen scale), SVG (vectors) and CSV.

SVG goes through QSvgGenerator: pyqtgraph 0.14's SVGExporter fails with Qt 6.11 and later.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

from PySide6.QtCore import QRectF, QSize, QSizeF
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtSvg import QSvgGenerator
from PySide6.QtWidgets import QGraphicsItem, QGraphicsScene, QGraphicsWidget

from lvm_studio.core.history import History
from lvm_studio.ui.widgets import style


def set_item_caching(items: Iterable[QGraphicsItem], on: bool) -> None:
    """Paint `items` from a device-pixel cache (on) or afresh on every paint (off)."""
    mode = QGraphicsItem.CacheMode.DeviceCoordinateCache if on else QGraphicsItem.CacheMode.NoCache
    for item in items:
        item.setCacheMode(mode)


@contextmanager
def _uncached(items):
    """Draw `items` afresh while exporting: a cached item would come out as a scaled-up bitmap."""
    items = list(items)
    set_item_caching(items, False)
    try:
        yield
    finally:
        set_item_caching(items, True)


@contextmanager
def _export_mode(scene: QGraphicsScene, scale: float):
    """Draw the scene as a figure `scale` times its logical size, as pyqtgraph's own exporters do.

    Items told of the export (setExportMode) draw symbols and antialiasing for it. Items that
    ignore transformations (a plot's legend) keep their size in device pixels, which made the
    legend of a 2x PNG half the size of everything else: they are scaled by `scale` meanwhile,
    about their top-left corner (their position is mapped through the scaled painter already).
    """
    items = scene.items()
    flag = QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations
    fixed = [(item, item.scale()) for item in items if item.flags() & flag]
    for item in items:
        if hasattr(item, "setExportMode"):
            item.setExportMode(True, {"antialias": True, "resolutionScale": scale})
    for item, _ in fixed:
        item.setScale(scale)
    try:
        yield
    finally:
        for item, old_scale in fixed:
            item.setScale(old_scale)
        for item in items:
            if hasattr(item, "setExportMode"):
                item.setExportMode(False)


@contextmanager
def laid_out_at(item: QGraphicsWidget, size: QSizeF):
    """Lay `item` (a plot layout) out at `size` logical pixels for an export, then put it back.

    Yields the rectangle to render. An export then has the same proportions of text to plot
    whatever the panel's size on screen: a wide dock no longer makes the legend a speck.
    Nothing is painted on screen meanwhile (no event-loop pass between the two layouts).
    """
    old = item.geometry()
    item.setGeometry(QRectF(old.topLeft(), size))
    _settle(item)
    try:
        yield item.sceneBoundingRect()
    finally:
        item.setGeometry(old)
        _settle(item)


def _settle(item: QGraphicsWidget) -> None:
    """Apply a new geometry now: the layout and, through the scene, each view's range mapping."""
    layout = QGraphicsWidget.layout(item)  # pyqtgraph's GraphicsLayout hides layout() behind an attribute
    if layout is not None:
        layout.activate()
    scene = item.scene()
    if scene is not None and hasattr(scene, "prepareForPaint"):
        scene.prepareForPaint()  # pyqtgraph's GraphicsScene: the ViewBoxes update their transforms


def save_png(scene: QGraphicsScene, source: QRectF, path: str | Path, cached_items=(), scale: float = 2.0) -> Path:
    """The scene's `source` rectangle rendered at `scale` times its size on screen."""
    path = Path(path)
    image = QImage(
        max(1, int(source.width() * scale)), max(1, int(source.height() * scale)), QImage.Format.Format_ARGB32
    )
    image.fill(QColor(style.PLOT_BACKGROUND))
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    with _export_mode(scene, scale), _uncached(cached_items):
        try:
            scene.render(painter, QRectF(image.rect()), source)
        finally:
            painter.end()
    if not image.save(str(path), "PNG"):
        raise OSError(f"could not write {path}")
    return path


def save_svg(
    scene: QGraphicsScene, source: QRectF, path: str | Path, cached_items=(), title: str = "", description: str = ""
) -> Path:
    """The scene's `source` rectangle as vectors, through QSvgGenerator."""
    path = Path(path)
    target = QRectF(0, 0, source.width(), source.height())
    generator = QSvgGenerator()
    generator.setFileName(str(path))
    generator.setSize(QSize(int(source.width()), int(source.height())))
    generator.setViewBox(target)
    generator.setTitle(title)
    generator.setDescription(description)
    painter = QPainter()
    if not painter.begin(generator):
        raise OSError(f"could not write {path}")
    painter.fillRect(target, QColor(style.PLOT_BACKGROUND))
    with _export_mode(scene, 1.0), _uncached(cached_items):  # cached items would land in the SVG as bitmaps
        try:
            scene.render(painter, target, source)
        finally:
            painter.end()
    if not path.is_file():
        raise OSError(f"could not write {path}")
    return path


def save_csv(history: History, path: str | Path) -> Path:
    """The whole history: one row per training record and per evaluation."""
    path = Path(path)
    path.write_text(history.to_csv(), encoding="utf-8")
    return path
