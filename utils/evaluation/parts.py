"""Part analysis: where a CAM's region above τ falls on an object's parts (numpy only).

For each image the caller gives the min-max normalised CAM ``t`` in [0, 1] and a part mask
at the same resolution (the evaluation crop): 0 = background, 1 = discriminative part (on
SYNTH the head), 2 = body (the less discriminative rest of the object).

**Region above τ**: the pixels the reference protocol's box is built from, i.e.
``reference_mask(t, τ)`` of ``utils.evaluation.localization`` (``floor(256 t) >= k(τ)``,
the released cubehelix rule) -- so the analysis at the run's ``cam_threshold`` and at the
sweep's best τ describes the very thresholds its GT-known Loc numbers come from.  All
pixels above τ count, not only the largest contour the box is drawn around.

Per image and τ, with R the region, P / B / G the part / body / background pixels and
O = P ∪ B the object:

``part_fraction``, ``body_fraction``, ``background_fraction``
    |R ∩ P| / |R|, |R ∩ B| / |R|, |R ∩ G| / |R| (they sum to 100%; undefined when R is empty);
``object_coverage``, ``body_coverage``, ``part_coverage``
    |R ∩ O| / |O|, |R ∩ B| / |B|, |R ∩ P| / |P| (undefined when the denominator is empty);
``region_size``
    |R| / all pixels.

"Expansion" (the E2Net claim) means a higher ``body_coverage`` without a higher
``background_fraction``: report the two side by side.

``PartAnalyzer`` averages each field over the images where it is defined (the mean of
per-image fractions, every image weighing the same; the number of images behind each
field is reported).  It keeps per-level sums only -- one entry per cut ``k`` in 0..256 --
so memory stays flat in the number of images and any τ can be asked for at the end
(e.g. the best τ, known only after the sweep).
"""
import numpy as np
from tabulate import tabulate

from utils.evaluation.localization import NUM_LEVELS, reference_levels, reference_threshold_index

BACKGROUND, PART, BODY = 0, 1, 2
FIELDS = ("part_fraction", "body_fraction", "background_fraction",
          "object_coverage", "body_coverage", "part_coverage", "region_size")
BINARISATION = "reference protocol: floor(256 t) >= k(tau) (the released cubehelix rule), all pixels above tau"
AVERAGING = "mean over images of per-image fractions (percent); each field over the images where it is defined"
TABLE_COLUMNS = (("region_size", "region (% of crop)"), ("part_fraction", "on discriminative part (%)"),
                 ("body_fraction", "on body (%)"), ("background_fraction", "on background (%)"),
                 ("object_coverage", "object covered (%)"), ("body_coverage", "body covered (%)"),
                 ("part_coverage", "part covered (%)"))


def kept_pixels_per_label(cam_norm, part_mask):
    """``[3, 257]``: pixels of each label (background, part, body) with level >= k, for k = 0..256."""
    cam_norm = np.asarray(cam_norm, dtype=np.float64)
    part_mask = np.asarray(part_mask)
    if cam_norm.ndim != 2 or cam_norm.shape != part_mask.shape:
        raise ValueError(f"CAM {cam_norm.shape} and part mask {part_mask.shape} must be 2-D of the same shape")
    if not (np.all(np.isfinite(cam_norm)) and cam_norm.min() >= 0 and cam_norm.max() <= 1):
        raise ValueError("the CAM must be min-max normalised to [0, 1] (utils.evaluation.localization.normalize_cam)")
    labels = np.unique(part_mask)
    if not np.isin(labels, (BACKGROUND, PART, BODY)).all():
        raise ValueError(f"part mask values must be 0 (background), 1 (part) or 2 (body); got {labels.tolist()}")
    levels = reference_levels(cam_norm).ravel()
    codes = part_mask.ravel().astype(np.int64) * NUM_LEVELS + levels
    histogram = np.bincount(codes, minlength=3 * NUM_LEVELS).reshape(3, NUM_LEVELS)
    kept = np.zeros((3, NUM_LEVELS + 1), dtype=np.int64)
    kept[:, :NUM_LEVELS] = np.cumsum(histogram[:, ::-1], axis=1)[:, ::-1]
    return kept


def image_fractions(cam_norm, part_mask):
    """Every field of one image at every cut ``k`` = 0..256: ``{field: float [257]}``, NaN where undefined."""
    kept = kept_pixels_per_label(cam_norm, part_mask).astype(np.float64)
    background, part, body = kept
    region = kept.sum(axis=0)
    totals = kept[:, 0]

    def ratio(numerator, denominator):
        denominator = np.broadcast_to(denominator, numerator.shape)
        out = np.full(numerator.shape, np.nan)
        np.divide(numerator, denominator, out=out, where=denominator > 0)
        return out

    return {"part_fraction": ratio(part, region), "body_fraction": ratio(body, region),
            "background_fraction": ratio(background, region),
            "object_coverage": ratio(part + body, totals[PART] + totals[BODY]),
            "body_coverage": ratio(body, totals[BODY]), "part_coverage": ratio(part, totals[PART]),
            "region_size": ratio(region, totals.sum())}


class PartAnalyzer:
    """Streaming part analysis over images; see the module docstring."""

    def __init__(self):
        self.num_images = 0
        self._sums = np.zeros((len(FIELDS), NUM_LEVELS + 1))
        self._counts = np.zeros((len(FIELDS), NUM_LEVELS + 1), dtype=np.int64)

    def add(self, cam_norm, part_mask):
        """Add one image: normalised CAM and part mask (0 / 1 / 2) of the same 2-D shape."""
        fractions = image_fractions(cam_norm, part_mask)
        for i, field in enumerate(FIELDS):
            defined = ~np.isnan(fractions[field])
            self._sums[i] += np.where(defined, fractions[field], 0.0)
            self._counts[i] += defined
        self.num_images += 1

    def at(self, tau):
        """``{field: percent or None, "images": {field: count}}`` at threshold ``tau``."""
        k = reference_threshold_index(float(tau))
        result = {"tau": float(tau)}
        for i, field in enumerate(FIELDS):
            count = int(self._counts[i, k])
            result[field] = 100.0 * float(self._sums[i, k]) / count if count else None
        result["images"] = {field: int(self._counts[i, k]) for i, field in enumerate(FIELDS)}
        return result

    def compute(self, thresholds):
        """JSON-able results at each named threshold, e.g. ``{"cam_threshold": 0.2, "best": 0.13}``."""
        if self.num_images == 0:
            raise ValueError("no image was added")
        return {"num_images": self.num_images, "binarisation": BINARISATION, "averaging": AVERAGING,
                "at": {name: self.at(tau) for name, tau in thresholds.items()}}


def parts_table(parts):
    """GitHub-Markdown table of ``PartAnalyzer.compute()``: one row per named threshold."""
    rows = [[f"{name} (τ = {entry['tau']:.2f})"] + [entry[field] for field, _ in TABLE_COLUMNS]
            for name, entry in parts["at"].items()]
    return tabulate(rows, ["threshold"] + [title for _, title in TABLE_COLUMNS], tablefmt="github",
                    floatfmt=".1f", missingval="—")
