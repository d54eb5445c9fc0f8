"""The model catalog: schema, loading and search."""

from sdm.catalog.load import Catalog, load
from sdm.catalog.model import BASES, MODEL_TYPES, Model, Variant

__all__ = ["BASES", "MODEL_TYPES", "Catalog", "Model", "Variant", "load"]
