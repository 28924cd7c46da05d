"""Lightning modules, DataModules, pure loss functions and callbacks.

Importing this package imports nothing heavy; import the submodules you need
(``clarifylab.training.sft_module`` etc. import torch and pytorch_lightning).
"""
