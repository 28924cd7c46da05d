"""Data model, loaders, chat formatting and the embedded synthetic corpus."""

from clarifylab.data.schema import Action, Clarification, Example, Turn

__all__ = ["Action", "Clarification", "Example", "Turn"]
