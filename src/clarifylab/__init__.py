"""ClarifyLab: train and evaluate LLMs that ask clarifying questions instead of guessing."""

__version__ = "0.1.0"
