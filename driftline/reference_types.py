"""The drift reference as typed records: what training stores in ``ModelMetadata.reference``.

``drift.reference`` builds these and ``drift.monitor`` reads them; they live in the kernel so the
registry can validate a model's metadata without importing ``drift``. Their JSON is the shape
metadata.json has always had (``drift.reference`` documents the sketches), so older files load:

- a numeric sketch (``kind`` "numeric"): decile ``edges``, ``proportions`` per bin,
  ``missing_rate`` and, from version 2, a reference ``sample`` (empty in version 1: PSI only);
- a categorical sketch (``kind`` "categorical"): the share of each level, ``missing_rate``;
- ``strata`` (version 2, optional): the same per time-of-day block of a clock feature, each
  stratum part without ``kind`` or ``edges`` (it uses the column's global edges) but with ``n``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NumericSketch(_Record):
    """Decile bins of a numeric column (or of the score), its missing rate and a reference sample."""

    kind: Literal["numeric"] = "numeric"
    edges: list[float] = Field(description="Up to 9 deduplicated decile cut points: len(edges) + 1 bins.")
    proportions: list[float] = Field(description="Share of the non-missing values per bin.")
    missing_rate: float = Field(ge=0, le=1)
    sample: list[float] = Field(
        default_factory=list, description="Non-missing values in random order, for KS; empty in version 1."
    )


class CategoricalSketch(_Record):
    """The share of each level of a categorical column among its non-missing values, and its missing rate."""

    kind: Literal["categorical"] = "categorical"
    levels: dict[str, float]
    missing_rate: float = Field(ge=0, le=1)


ColumnSketch = Annotated[NumericSketch | CategoricalSketch, Field(discriminator="kind")]


class NumericStratum(_Record):
    """A numeric column's sketch within one time-of-day stratum (bins are the column's global edges)."""

    n: int = Field(ge=0, description="Non-missing values in the stratum.")
    proportions: list[float]
    missing_rate: float = Field(ge=0, le=1)
    sample: list[float] = Field(default_factory=list)


class CategoricalStratum(_Record):
    """A categorical column's level shares within one time-of-day stratum."""

    n: int = Field(ge=0, description="Non-missing values in the stratum.")
    levels: dict[str, float]
    missing_rate: float = Field(ge=0, le=1)


#: Stratum parts carry no ``kind`` on disk; ``extra="forbid"`` tells them apart (levels vs proportions).
StratumSketch = NumericStratum | CategoricalStratum


class Strata(_Record):
    """Sketches per block of a clock feature, so a window is compared with its own time of day."""

    feature: str = Field(description="The clock feature whose values pick the stratum, e.g. hour_of_day.")
    edges: list[float] = Field(description="Block edges: len(edges) + 1 strata, bins as numpy searchsorted right.")
    share: list[float] = Field(description="Share of the reference rows per stratum.")
    features: dict[str, list[StratumSketch]] = Field(description="Per column, one part per stratum.")
    score: list[NumericStratum] = Field(description="The score, one part per stratum.")


class DriftReference(_Record):
    """Reference sketches of a model's inputs and score, taken on held-out data at training time."""

    version: int = Field(ge=1, description="Sketch version: 1 PSI only, 2 adds KS samples and strata.")
    n: int = Field(ge=0, description="Rows sketched.")
    features: dict[str, ColumnSketch] = Field(description="Column name -> sketch; others are not monitored.")
    score: NumericSketch | None = None
    strata: Strata | None = None

    @model_serializer(mode="wrap")
    def _omit_absent(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # metadata.json has never held a null score or strata: absent parts stay absent.
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if not (k in ("score", "strata") and v is None)}
