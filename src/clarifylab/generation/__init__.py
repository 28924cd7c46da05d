"""Data builders that call a model (teacher / conditional generator M): ACT contrastive pairs (Alg. 1)."""
