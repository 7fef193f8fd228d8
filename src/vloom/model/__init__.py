"""Decoder LM, vision encoder, connector and the VLM that joins them."""

from vloom.model.io import load_model, save_model
from vloom.model.vlm import PARTS, VLM, make_targets

__all__ = ["PARTS", "VLM", "load_model", "make_targets", "save_model"]
