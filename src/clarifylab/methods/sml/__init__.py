"""Social meta-learning with Q-priming (Cook et al., arXiv 2602.16488; no public code: every prompt and
unstated choice here is ours, README "Social meta-learning (SML)").

Paper step -> function:

1. Problems: fully specified training problems with the solution as the teacher's private information, and
   their sharded twins for evaluation -> :func:`problems.build_problems` (``problem_from_synthetic``,
   ``shard_spec``: the intent first, then one slot value per user turn, each exactly once).
2. Pedagogical dialogues: the student attempts, the teacher (the same model given the solution) gives feedback,
   never the answer (``teacher.leaks_answer``), up to 4 student turns -> :func:`dialogue.run_dialogues`.
3. Offline SML: SFT on the student turns of successful dialogues -> :func:`builders.generate_sml_dialogues`
   (``generate.py task=sml_dialogues``), then ``train.py trainer=sft``.
4. Q-priming: a wrong student turn at turn t replaced, with probability 0.75^t, by the teacher's question; the
   student's input keeps the public history only -> :func:`builders.generate_q_priming`
   (``dialogue.replacement_probability``), then ``trainer=sft``.
5. Online SML: G dialogues per problem, binary reward from H discounted 0.7 per turn, group-normalised
   advantages, policy gradient on student tokens, no KL -> :func:`online.run_sml` (``trainer=sml``) on the
   shared ``training/group_pg_module.py`` and ``training/policy_gradient.py``.
6. Evaluation on underspecified (sharded) tasks: success by turn budget, premature answer attempts, question
   rate, per-turn gold-answer log-prob -> :func:`sharded_eval.run_sml_sharded` (``protocol=sml_sharded``),
   columns in :mod:`sharded_metrics`.
"""
