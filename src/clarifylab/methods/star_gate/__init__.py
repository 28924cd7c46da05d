"""STaR-GATE (Andukuri et al., 2024, arXiv 2403.19154): expert iteration on simulated persona conversations.

Not built yet (issue: ``trainer=star-gate``). It will hold the persona roleplayer, the m0 log-prob selection of
conversations, response regularization, the per-iteration recipe and the win-rate evaluation, on top of the
shared backends, simulators, rollout and SFT recipe.
"""
