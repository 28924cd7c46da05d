"""IRPO: iterative reasoning preference optimization (Pang et al., 2024), ACT's on-policy DPO baseline.
``trainer=irpo`` -> :func:`recipe.run_irpo`.

Paper step -> code, per iteration t:

1. sample N replies per prompt from M_t: :func:`pairs.sample_candidates`;
2. label each by the task heuristic H against the gold reply: :func:`pairs.label_candidates`;
3. pair a correct with an incorrect reply per prompt: :func:`pairs.pair_candidates` (all three:
   :func:`pairs.build_irpo_pairs`);
4. DPO + NLL on the winner from M_t, giving M_{t+1}: :func:`clarifylab.training.dpo_recipe.run_dpo`, looped by
   :func:`recipe.run_irpo` (one folder per iteration, finished iterations skipped).
"""
