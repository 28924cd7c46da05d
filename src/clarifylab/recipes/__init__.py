"""Outer training loops (build data -> fit -> iterate), one module per trainer: ``sft``, ..."""
