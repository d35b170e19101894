"""Bring your own images: a folder of pictures or an array file -> an MNIST-style .npz.

Sources (`import_dataset`):
  * a folder of PNG, JPEG or BMP files of any size, grey or colour; images in subfolders take the
    subfolder's name as their label (sorted names are labels 0, 1, ...); images directly in the folder
    are unlabelled (refused, with the reason, when label subfolders exist too);
  * a `.npy` or `.npz` array file: (N, H, W) or (N, H, W, C) uint8 or float in [0, 1]; an `.npz` with
    MNIST's keys keeps its train/test split and labels, one with `x`/`images` (and `y`/`labels`) or a
    single array is split by the seeded test fraction.

Every image becomes the model's input: grey (core.images.to_grey: BT.601 luma, alpha over white),
resized to side × side (28 by default, up to 64; None keeps the images' own square size), and with
`centre` MNIST-centred (core.images.to_mnist_format: ink made bright, fitted to a box of 20/28 of the
side, centre of mass in the middle; LeCun et al. 1998, §III-A). The result is grey levels (uint8):
a Bernoulli model binarizes them afresh at each step, a Gaussian one models them as they are.

Files that cannot be used are listed in `ImportResult.refused` with the reason, never fatal; an
import that ends with too few images, or a source that is unusable as a whole, raises
DatasetImportError with one line naming the problem, and nothing is written. The output is written
atomically (a temporary file renamed over the target), so a failed or cancelled import leaves the
previous file whole. Images are decoded with Pillow, after checking the size its header claims
against MAX_PIXELS (a 20,000 × 20,000 PNG of a few kilobytes would need 400 MB to decode).
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lvm_studio.core.array_files import ArrayFileError, load_arrays
from lvm_studio.core.data import MAX_SIDE, MIN_SIDE, MNIST, REQUIRED_KEYS
from lvm_studio.core.images import SIDE, area_resize, to_grey, to_mnist_format

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
ARRAY_SUFFIXES = (".npy", ".npz")
MAX_PIXELS = 36_000_000  # per image, checked before decoding: a 36-megapixel photo passes, a bomb does not
MAX_FILES = 500_000
MAX_LABELS = 256  # labels are stored as uint8
MIN_IMAGES = 3  # one for the test set, one for validation, one to train on
X_KEYS = ("x", "images", "arr_0")
Y_KEYS = ("y", "labels")


class DatasetImportError(ValueError):
    """A source that cannot become a dataset, with one line that names the problem."""


@dataclass(frozen=True)
class Refusal:
    """A file left out of the dataset, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class ImportOptions:
    side: int | None = SIDE  # the images' side after import; None keeps the source's own (square) size
    test_fraction: float = 0.1  # held out as the test set, chosen by `seed`
    seed: int = 0
    centre: bool | None = None  # MNIST-centre each image; None: yes for a folder, no for an array file

    def __post_init__(self):
        if self.side is not None and not MIN_SIDE <= int(self.side) <= MAX_SIDE:
            raise DatasetImportError(f"the image size must be {MIN_SIDE} to {MAX_SIDE} pixels, got {self.side}")
        if not 0.0 < float(self.test_fraction) < 1.0:
            raise DatasetImportError(f"the test fraction must lie strictly between 0 and 1, got {self.test_fraction}")


@dataclass
class ImportResult:
    """The converted dataset: uint8 (N, side, side) images, uint8 labels, what was refused."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    label_names: tuple[str, ...]
    labelled: bool
    source: str
    refused: list[Refusal] = field(default_factory=list)
    sizes: Counter = field(default_factory=Counter)  # (height, width) of the source images: how many of each
    seconds: float = 0.0

    @property
    def side(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def n_images(self) -> int:
        return len(self.x_train) + len(self.x_test)

    def label_counts(self) -> dict[str, int]:
        """Images per label name (train and test together); {} without labels."""
        if not self.labelled:
            return {}
        counts = np.bincount(np.concatenate([self.y_train, self.y_test]), minlength=len(self.label_names))
        return {self.label_names[i] if i < len(self.label_names) else str(i): int(c) for i, c in enumerate(counts)}

    def summary(self) -> str:
        sizes = sorted(self.sizes)
        if not sizes:
            size_text = ""
        elif len(sizes) == 1:
            size_text = f" from {sizes[0][0]}×{sizes[0][1]}"
        else:
            size_text = f" from {len(sizes)} sizes ({sizes[0][0]}×{sizes[0][1]} to {sizes[-1][0]}×{sizes[-1][1]})"
        labels = f"{len(self.label_names)} labels" if self.labelled else "no labels"
        refused = f", {len(self.refused)} file(s) refused" if self.refused else ""
        return (
            f"{self.n_images:,} images{size_text} -> {self.side}×{self.side} grey: {len(self.x_train):,} train, "
            f"{len(self.x_test):,} test, {labels}{refused}"
        )

    def save(self, path: str | Path) -> Path:
        """Write an MNIST-style .npz that core.data.load_mnist reads, atomically."""
        arrays = {
            "x_train": self.x_train,
            "y_train": self.y_train,
            "x_test": self.x_test,
            "y_test": self.y_test,
            "labelled": np.array(self.labelled),
        }
        if self.label_names:
            arrays["label_names"] = np.array(self.label_names, dtype=str)
        return _save_npz_atomically(path, arrays)


def _save_npz_atomically(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# --- progress and cancellation ---------------------------------------------------------------


class _NoContext:
    """What import_dataset uses without a ctx: no progress, never cancelled."""

    def report(self, fraction: float, payload=None) -> None:
        pass

    def cancelled(self) -> bool:
        return False


class ImportCancelled(Exception):
    """The import was cancelled (ctx.cancelled()); nothing was written."""


def _check(ctx) -> None:
    if ctx.cancelled():
        raise ImportCancelled()


# --- one image -------------------------------------------------------------------------------


def decode_image(path: str | Path) -> np.ndarray:
    """A picture file -> 2-D grey float64 in [0, 1]; DatasetImportError with the reason otherwise.

    The header's size is checked against MAX_PIXELS before any pixel is decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w * h > MAX_PIXELS:
                    raise DatasetImportError(
                        f"{w}×{h} pixels is more than {MAX_PIXELS:,} pixels, too large to decode safely"
                    )
                if im.mode not in ("L", "RGB", "RGBA", "I;16", "1"):
                    im = im.convert("RGBA" if "A" in im.mode or "transparency" in im.info else "RGB")
                a = np.asarray(im)
    except DatasetImportError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        # Pillow's own guard (at about 179 megapixels) fires in Image.open, before ours can
        raise DatasetImportError(f"more than {MAX_PIXELS:,} pixels, too large to decode safely ({e})") from None
    except UnidentifiedImageError:
        raise DatasetImportError("not an image Pillow can read (PNG, JPEG or BMP)") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:  # truncated or corrupt data
        raise DatasetImportError(f"corrupt or truncated image ({type(e).__name__}: {e})") from None
    try:
        return to_grey(a)
    except ValueError as e:
        raise DatasetImportError(str(e)) from None


def to_model_image(grey: np.ndarray, side: int, centre: bool) -> np.ndarray:
    """2-D grey levels in [0, 1] -> (side, side) uint8: MNIST-centred, or just area-resized."""
    if centre:
        a = to_mnist_format(grey, side=side)  # (side, side) float32
    elif grey.shape == (side, side):
        a = grey
    else:
        a = area_resize(grey, side, side)  # (side, side)
    return np.clip(np.rint(np.asarray(a) * 255.0), 0, 255).astype(np.uint8)


# --- sources ---------------------------------------------------------------------------------


def import_dataset(source: str | Path, options: ImportOptions | None = None, ctx=None) -> ImportResult:
    """Convert a folder of images or an array file; see the module docstring.

    ctx (optional): ctx.report(fraction, payload) gets progress, ctx.cancelled() ends the import
    early with ImportCancelled. Raises DatasetImportError for an unusable source."""
    options = options or ImportOptions()
    ctx = ctx or _NoContext()
    source = Path(source)
    t0 = time.perf_counter()
    if source.is_dir():
        result = _import_folder(source, options, ctx)
    elif source.is_file():
        if source.suffix.lower() not in ARRAY_SUFFIXES:
            raise DatasetImportError(
                f"{source}: not a folder, .npy or .npz (a single picture is not a dataset: put pictures in a folder)"
            )
        result = _import_arrays(source, options, ctx)
    else:
        raise DatasetImportError(f"{source}: no such folder or file")
    result.seconds = time.perf_counter() - t0
    return result


def _import_folder(folder: Path, options: ImportOptions, ctx) -> ImportResult:
    centre = True if options.centre is None else options.centre
    files: list[Path] = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files.extend(Path(root) / n for n in sorted(names) if not n.startswith("."))
        if len(files) > MAX_FILES:
            raise DatasetImportError(f"{folder}: more than {MAX_FILES:,} files; import a smaller folder")
    if not files:
        raise DatasetImportError(f"{folder}: the folder is empty (no image files in it or its subfolders)")
    refused: list[Refusal] = []
    candidates: list[tuple[Path, str | None]] = []
    for f in files:
        rel = f.relative_to(folder)
        if f.suffix.lower() not in IMAGE_SUFFIXES:
            refused.append(Refusal(str(rel), f"not a PNG, JPEG or BMP file (suffix {f.suffix or 'none'})"))
        else:
            candidates.append((f, rel.parts[0] if len(rel.parts) > 1 else None))
    labelled = any(label is not None for _, label in candidates)
    if labelled:
        for f, label in candidates:
            if label is None:
                refused.append(Refusal(f.name, "outside the label subfolders (with subfolders, every image needs one)"))
        candidates = [(f, label) for f, label in candidates if label is not None]
    names = sorted({label for _, label in candidates if label is not None})
    if len(names) > MAX_LABELS:
        raise DatasetImportError(f"{folder}: {len(names)} label subfolders; at most {MAX_LABELS} are supported")
    index = {n: i for i, n in enumerate(names)}
    greys: list[np.ndarray] = []
    labels: list[int] = []
    sizes: Counter = Counter()
    for i, (f, label) in enumerate(candidates):
        if i % 64 == 0:
            _check(ctx)
            ctx.report(0.95 * i / len(candidates), f"{i:,} / {len(candidates):,} files")
        try:
            grey = decode_image(f)
        except DatasetImportError as e:
            refused.append(Refusal(str(f.relative_to(folder)), str(e)))
            continue
        sizes[grey.shape] += 1
        if options.side is None:
            greys.append(grey)  # converted below, once the common size is known
        else:
            greys.append(to_model_image(grey, options.side, centre))
        labels.append(index[label] if label is not None else 0)
    if not greys:
        first = "; ".join(f"{r.path}: {r.reason}" for r in refused[:3])
        raise DatasetImportError(f"{folder}: no usable images among {len(files)} file(s) ({first})")
    if options.side is None:
        side = _common_side(sizes, str(folder))
        greys = [to_model_image(g, side, centre) for g in greys]
    x = np.stack(greys)  # (N, side, side) uint8
    y = np.asarray(labels, dtype=np.uint8)  # (N,)
    ctx.report(0.97, "splitting")
    return _split(x, y, tuple(names), labelled, str(folder), refused, sizes, options)


def _common_side(sizes: Counter, name: str) -> int:
    """The one square size all images share, for `side=None`; DatasetImportError for mixed or bad sizes."""
    if len(sizes) > 1:
        listed = ", ".join(f"{h}×{w} ({n})" for (h, w), n in sorted(sizes.items())[:4])
        raise DatasetImportError(
            f"{name}: mixed image sizes ({listed}{', …' if len(sizes) > 4 else ''}); give a size to resize them all"
        )
    (h, w), _ = next(iter(sizes.items()))
    if h != w or not MIN_SIDE <= h <= MAX_SIDE:
        raise DatasetImportError(
            f"{name}: the images are {h}×{w}; keeping their size needs square images of {MIN_SIDE} to {MAX_SIDE} "
            f"pixels a side: give a size to resize them"
        )
    return h


def _split(
    x: np.ndarray,
    y: np.ndarray,
    label_names: tuple[str, ...],
    labelled: bool,
    source: str,
    refused: list[Refusal],
    sizes: Counter,
    options: ImportOptions,
) -> ImportResult:
    """A seeded random test set of round(N · test_fraction) images (at least one), the rest to train on.

    Both in the permutation's order, not the files': load_mnist holds out the END of the training set
    for validation, which in file order would be the last label's last images (a validation set of
    one letter in fonts the training never saw)."""
    n = len(x)
    if n < MIN_IMAGES:
        raise DatasetImportError(
            f"{source}: only {n} usable image(s); a dataset needs at least {MIN_IMAGES} (train, validation, test)"
        )
    n_test = min(n - 2, max(1, int(round(n * options.test_fraction))))
    perm = np.random.default_rng(options.seed).permutation(n)
    test, train = perm[:n_test], perm[n_test:]
    return ImportResult(x[train], y[train], x[test], y[test], label_names, labelled, source, refused, sizes)


def _as_images(a: np.ndarray, key: str, name: str) -> np.ndarray:
    """Check an array of images: (N, H, W) or (N, H, W, C), uint8 or float in [0, 1]."""
    if a.ndim not in (3, 4) or (a.ndim == 4 and a.shape[3] not in (1, 3, 4)):
        raise DatasetImportError(
            f"{name}: '{key}' has shape {a.shape}; expected images (N, H, W) or (N, H, W, C) with C = 1, 3 or 4"
        )
    if a.shape[0] == 0 or a.shape[1] == 0 or a.shape[2] == 0:
        raise DatasetImportError(f"{name}: '{key}' holds no images (shape {a.shape})")
    if a.dtype == np.uint8:
        return a
    if a.dtype.kind != "f":
        raise DatasetImportError(f"{name}: '{key}' has dtype {a.dtype}; expected uint8 (0..255) or float in [0, 1]")
    lo, hi = float(np.min(a)), float(np.max(a))
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo < 0.0 or hi > 1.0:
        raise DatasetImportError(f"{name}: '{key}' has values from {lo:g} to {hi:g}; float images must lie in [0, 1]")
    return a


def _as_labels(a: np.ndarray | None, n: int, key: str, name: str) -> np.ndarray | None:
    if a is None:
        return None
    if a.ndim != 1 or len(a) != n:
        raise DatasetImportError(f"{name}: '{key}' has shape {a.shape}; expected one label per image, ({n},)")
    if a.dtype.kind not in "iub" or (len(a) and (a.min() < 0 or a.max() >= MAX_LABELS)):
        raise DatasetImportError(f"{name}: '{key}' must hold whole numbers 0 to {MAX_LABELS - 1}")
    return a.astype(np.uint8)


def _convert_stack(images: np.ndarray, side: int, centre: bool, ctx, done: int, total: int) -> np.ndarray:
    """(N, H, W[, C]) -> (N, side, side) uint8, one image at a time (progress and cancel between them)."""
    out = np.empty((len(images), side, side), dtype=np.uint8)
    if not centre and images.shape[1:3] == (side, side) and images.ndim == 3 and images.dtype == np.uint8:
        out[:] = images  # already the model's format
        return out
    for i in range(len(images)):
        if i % 256 == 0:
            _check(ctx)
            ctx.report(0.95 * (done + i) / total, f"{done + i:,} / {total:,} images")
        out[i] = to_model_image(to_grey(images[i]), side, centre)
    return out


def _import_arrays(path: Path, options: ImportOptions, ctx) -> ImportResult:
    name = str(path)
    centre = False if options.centre is None else options.centre
    try:
        arrays = load_arrays(path)
    except ArrayFileError as e:
        raise DatasetImportError(str(e)) from None
    _check(ctx)
    if all(k in arrays for k in REQUIRED_KEYS):  # MNIST-style: keep its split
        parts = [_as_images(arrays[k], k, name) for k in ("x_train", "x_test")]
        ys = [_as_labels(arrays[k], len(p), k, name) for k, p in zip(("y_train", "y_test"), parts)]
        sizes = Counter({tuple(p.shape[1:3]): len(p) for p in parts})
        side = options.side or _common_side(Counter(dict.fromkeys(sizes, 1)), name)
        total = len(parts[0]) + len(parts[1])
        x_train = _convert_stack(parts[0], side, centre, ctx, 0, total)
        x_test = _convert_stack(parts[1], side, centre, ctx, len(parts[0]), total)
        names: tuple[str, ...] = ()
        if "label_names" in arrays and arrays["label_names"].dtype.kind == "U":
            names = tuple(str(v) for v in arrays["label_names"])
        labelled = bool(arrays["labelled"]) if "labelled" in arrays else True
        if labelled and not names:
            names = tuple(str(i) for i in range(int(max(ys[0].max(initial=0), ys[1].max(initial=0))) + 1))
        if len(x_train) < 2:
            raise DatasetImportError(f"{name}: only {len(x_train)} training image(s); need at least 2")
        return ImportResult(x_train, ys[0], x_test, ys[1], names, labelled, name, [], sizes)
    x_key = next((k for k in X_KEYS if k in arrays), None)
    if x_key is None and len(arrays) == 1:
        x_key = next(iter(arrays))
    if x_key is None:
        raise DatasetImportError(
            f"{name}: no images found: expected MNIST's keys ({', '.join(REQUIRED_KEYS)}), an array named "
            f"{' or '.join(X_KEYS[:2])}, or a single array (found: {', '.join(arrays) or 'none'})"
        )
    images = _as_images(arrays[x_key], x_key, name)
    y_key = next((k for k in Y_KEYS if k in arrays), None)
    y = _as_labels(arrays.get(y_key) if y_key else None, len(images), y_key or "", name)
    sizes = Counter({tuple(images.shape[1:3]): len(images)})
    side = options.side or _common_side(sizes, name)
    x = _convert_stack(images, side, centre, ctx, 0, len(images))
    labelled = y is not None
    names = tuple(str(i) for i in range(int(y.max(initial=0)) + 1)) if labelled else ()
    return _split(x, y if labelled else np.zeros(len(x), np.uint8), names, labelled, name, [], sizes, options)


def import_to_file(
    source: str | Path, out: str | Path, options: ImportOptions | None = None, ctx=None
) -> tuple[ImportResult, Path]:
    """import_dataset, then write the result (atomically) to `out`."""
    result = import_dataset(source, options, ctx)
    _check(ctx or _NoContext())
    return result, result.save(out)


def run_import_task(ctx, source: str | Path, out: str | Path, options: ImportOptions) -> ImportOutcome:
    """The app's background task (workers/tasks.py): import, write `out`, read it back as the app will.
    Never raises for a bad source or a cancel: the outcome says why (nothing is written then)."""
    from lvm_studio.core.data import DataError, load_mnist

    try:
        result, path = import_to_file(source, out, options, ctx)
        ctx.report(0.99, "reading it back")
        return ImportOutcome(result, path, load_mnist(path), "")
    except ImportCancelled:
        return ImportOutcome(None, None, None, "cancelled")
    except (DatasetImportError, DataError, OSError) as e:
        return ImportOutcome(None, None, None, str(e))


def open_dataset_task(ctx, path: str | Path) -> ImportOutcome:
    """Re-open a converted dataset (the app's recent list) in the background."""
    from lvm_studio.core.data import DataError, load_mnist

    try:
        return ImportOutcome(None, Path(path), load_mnist(path), "")
    except DataError as e:
        return ImportOutcome(None, None, None, str(e))


@dataclass(frozen=True)
class ImportOutcome:
    result: ImportResult | None  # the conversion's report (None when only re-opened)
    path: Path | None  # the .npz written or opened
    data: MNIST | None  # as core.data.load_mnist reads it
    error: str  # "" on success, "cancelled", or the one-line reason
