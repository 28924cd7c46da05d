"""One package per method of ClarifyLab; everything specific to a method lives in its package.

- :mod:`~clarifylab.methods.act` — ACT (Chen et al., ICLR 2025): Alg. 1 pairs, Alg. 2 on-policy replacement,
  the DPO-Dist baseline, the data-size sweep and the paper's table layout.
- :mod:`~clarifylab.methods.irpo` — IRPO (Pang et al., 2024), ACT's iterative-DPO baseline.
- :mod:`~clarifylab.methods.star_gate` — STaR-GATE (Andukuri et al., 2024): expert iteration on persona dialogues.
- :mod:`~clarifylab.methods.ts` — the teacher-student clarification / correction curriculum for table QA.
- :mod:`~clarifylab.methods.sml` — social meta-learning with Q-priming.

The rule (docs/architecture.md, enforced by tests/test_import_direction.py): ``methods/`` may import any shared
layer (data, backends, models, env, metrics, training, evaluation); no shared layer imports ``methods/``, and no
method imports another method's package. ``conf/trainer/<method>.yaml`` names the method's entry function
(``recipe:``), and that function shows the algorithm's steps in order.
"""
