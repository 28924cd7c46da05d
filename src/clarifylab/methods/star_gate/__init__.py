"""STaR-GATE: teaching language models to ask clarifying questions (Andukuri et al., 2024, arXiv 2403.19154).
``trainer=star-gate`` -> :func:`recipe.run_star_gate`; ``protocol=star_gate_win_rate`` ->
:func:`win_rate_eval.run_win_rate_evaluation`; ``task=stargate_personas`` / ``task=stargate_oracle`` ->
:mod:`builders`.

Paper step -> code:

0. data: tasks, personas (few-shot from PRODIGy seeds: :func:`builders.generate_stargate_personas`) and oracle
   answers written with the persona in view (:func:`builders.generate_stargate_oracle`); read by
   ``data/loaders/stargate.py`` (``dataset=stargate``);
1. simulate N conversations per (persona, task) between the Questioner m_t and the persona Roleplayer
   (``env/persona_roleplayer.py``), K turns drawn once per pair: :func:`simulate.simulate_conversations`,
   :func:`simulate.draw_turns`;
2. score each by log p_m0(oracle | task, conversation) (Eq. 1): :func:`oracle_logprob.score_oracle_logprobs`;
3. keep the top-k per pair and add the response regularization (m_t's own answer):
   :func:`selection.select_top_k`, :func:`selection.training_example`;
4. SFT from m0 on the selected examples: :func:`clarifylab.training.sft_recipe.run_sft`, looped over iterations and
   alternating splits by :func:`recipe.run_star_gate`;
5. evaluate: win rate of m_t's answer against m0's, judged with the persona in view, in a randomized order and in
   both orders, with bootstrap intervals: :mod:`win_rate` (arithmetic), :mod:`win_rate_eval` (the protocol).
"""
