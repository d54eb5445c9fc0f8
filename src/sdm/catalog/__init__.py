"""The model catalog: schema, loading and search."""

from sdm.catalog.load import load
from sdm.catalog.model import BASES, MODEL_TYPES, Catalog, Model, Variant

__all__ = ["BASES", "MODEL_TYPES", "Catalog", "Model", "Variant", "load"]
