"""Social meta-learning with Q-priming (Cook et al., arXiv 2602.16488).

Not built yet (issue: ``trainer=sml``). It will hold the pedagogical-dialogue builder on fully specified
problems, Q-priming, the online group-relative policy-gradient module and the underspecified multi-turn
evaluation columns.
"""
