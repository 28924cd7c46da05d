"""ACT: action-based contrastive self-training (Chen et al., ICLR 2025). ``trainer=act`` -> :func:`recipe.run_act`.

Paper step -> code:

- Alg. 1 (contrastive action pairs from a dataset; M writes the loser with the other action):
  :func:`pairs.build_act_pairs` (``generate.py task=act_pairs`` -> :func:`pairs.generate_act_pairs`).
- Alg. 2 lines 2-16 (per batch: sample from pi_theta, classify with A, simulate with U, score with H, replace the
  winner or the loser): :class:`replacer.ACTReplacer`, plugged into the shared DPO module's ``pair_replacer`` hook.
- Alg. 2 line 17 (the DPO update on the replaced batch) and checkpoint selection by reward margin:
  :func:`clarifylab.training.dpo_recipe.run_dpo`, called by :func:`recipe.run_act`.
- Table 5 ablations (random actions, no on-policy sampling, no simulation): :func:`recipe.ablation_switches`,
  :func:`pairs.randomize_actions`, ``ACTReplacerConfig.simulation``.
- §4.3 / App. B DPO-Dist baseline: :mod:`dpo_dist_pairs` (``generate.py task=dpo_dist_pairs``).
- Tables 1-3 (data-size sweep and its layout): :mod:`data_size_sweep` (``experiments/act_data_sweep.py``),
  :mod:`paper_tables` (``experiments/report.py --layout act``).
"""
