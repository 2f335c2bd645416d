"""What an adapter declares about its kind, as data: numeric sorts, charts, viewer capabilities, wording.

The catalog, the pages and the inference checks read these declarations (app.datasets.base.DatasetAdapter's class
attributes) instead of comparing kind names; nothing here runs SQL or touches files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class NumericSort:
    """Where a numeric sort value lives on an item's own row: an `Item` column (`column="age"`) or a number in the
    item's JSON meta (`meta="mask_area"`); exactly one. app.catalog.sorting turns it into the SQL expression."""

    column: str | None = None
    meta: str | None = None

    def __post_init__(self) -> None:
        if (self.column is None) == (self.meta is None):
            raise ValueError("a NumericSort reads either an item column or a meta key, exactly one")


ChartKind = Literal["crosstab", "counts", "histogram", "lesion_map", "lesion_sizes"]
CHART_KINDS: tuple[str, ...] = ("crosstab", "counts", "histogram", "lesion_map", "lesion_sizes")


@dataclass(frozen=True)
class ChartSpec:
    """One chart of the dataset page, declared as data; app.catalog.charts builds it by `kind`:

    - `crosstab`: stacked bars of facet `rows` × facet `cols` from the facet index; `limit` keeps the largest
      rows (saying how many were left out), `order` fixes the row order (else the adapter's `facet_order` of
      `rows`, else by value); series are named by `facet_labels[cols]` unless `named_series` is False;
    - `counts`: bars of items per value of facet `rows` (the counts stored at ingest);
    - `histogram`: the numeric sort field `value` (× `scale`, in `unit`) in `bins` = (start, stop, step), one
      series per value of the column facet `group` (named by `facet_labels[group]`, `missing` for no value);
    - `lesion_map`: RECIST lesions' normalised location (x against z), one colour per `group` (lesion type);
    - `lesion_sizes`: RECIST long diameters in mm.
    """

    kind: ChartKind
    title: str
    rows: str | None = None
    cols: str | None = None
    value: str | None = None
    group: str | None = None
    missing: str = "none"
    bins: tuple[float, float, float] = (0.0, 105.0, 5.0)
    scale: float = 1.0
    unit: str = ""
    limit: int | None = None
    order: tuple[str, ...] = ()
    named_series: bool = True

    def facets(self) -> tuple[str, ...]:
        """The facet fields this chart reads (crosstab/counts rows and cols)."""
        return tuple(f for f in (self.rows, self.cols) if f is not None)


LABEL_BALANCE = ChartSpec("crosstab", "Label balance per split", rows="split", cols="label",
                          order=("train", "valid", "val", "test"))
MEASURING_TOOLS: tuple[str, ...] = ("line", "bidir")  # length in mm; bidirectional (RECIST) long × short axis


@dataclass(frozen=True)
class ViewerSpec:
    """What the item viewer offers for this kind; the item page sends it to the script as data.

    Whether an item is a volume (its planes), its own window and whether its values are HU come from the item's
    row (a DICOM folder holds CT and MR, 2-D and 3-D); these are what the kind decides."""

    spacing_maps_planes: bool = False  # the voxel spacing maps a point between planes (VerSe's resampled volumes);
    # False: the shown images' own sizes do (DICOM planes are cut at the acquired in-plane resolution)
    tools: tuple[str, ...] = MEASURING_TOOLS  # measuring tools that make sense on these images
    centroid_slab_mm: float = 2.0  # a centroid is drawn on planes within this distance of it
    label_gap_mm: float = 22.0  # from a centroid to its name


# Images where a RECIST long × short axis means nothing (H&E tiles, pathology patches, class-folder pictures):
# the length tool only.
LENGTH_ONLY_VIEWER = ViewerSpec(tools=("line",))


@dataclass(frozen=True)
class Wording:
    """What this kind calls its patient / study / series levels (PCam: a slide; VerSe: a subject)."""

    patient: str = "patient"
    study: str = "study"
    series: str = "series"


@dataclass(frozen=True)
class QueueSuggestion:
    """A review queue the dataset page offers ready-made for this kind (REVIEW.md's built-in suggestions).

    `filters` are grid filters (facet → values): the suggestion applies only when the dataset counts each of these
    facet values. `needs_model`, when set, is a per-item metric name: the suggestion applies once per model that
    has that metric on the dataset, with `{model}` in `sort` replaced by the model's id (e.g. `metric:{model}:dice`,
    lowest Dice first). `limit` keeps the first items of that order (a queue of the worst, not of everything)."""

    name: str
    filters: tuple[tuple[str, tuple[str, ...]], ...] = ()
    sort: str | None = None
    needs_model: str | None = None
    limit: int | None = None
    readers_per_item: int = 1

    def __post_init__(self) -> None:
        if self.needs_model is not None and (self.sort is None or "{model}" not in self.sort):
            raise ValueError("a suggestion that needs a model sorts by its metric: put {model} in sort")


# The built-in suggestions (REVIEW.md) the adapters pick from.
MODEL_DISAGREES = QueueSuggestion("Model disagrees with the label, most confident first",
                                  sort="-metric:{model}:nll", needs_model="nll", limit=200)
DETECTOR_MISSES = QueueSuggestion("Detector misses first (lowest sensitivity)", sort="metric:{model}:sensitivity",
                                  needs_model="sensitivity", limit=200)
LOWEST_DICE = QueueSuggestion("Lowest Dice first", sort="metric:{model}:dice", needs_model="dice", limit=200)
LOWEST_DICE_3D = QueueSuggestion("Lowest Dice first", sort="metric:{model}:dice_mean", needs_model="dice_mean",
                                 limit=200)
# A scan's identification rate is below 1 when a predicted centroid lies more than 20 mm from the ground truth's
# (or is missing): lowest first puts those scans at the head of the queue.
CENTROIDS_OFF = QueueSuggestion("Vertebra centroids > 20 mm off (lowest identification rate first)",
                                sort="metric:{model}:identification_rate", needs_model="identification_rate",
                                limit=200)
POSSIBLY_NOISY = QueueSuggestion("Lesions marked Possibly_noisy", filters=(("noisy", ("1",)),))
