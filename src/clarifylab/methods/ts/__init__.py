"""The teacher-student clarification and correction curriculum for table QA (Poelitz & McKenna, arXiv 2503.14167).

Not built yet (issue: the TS curriculum). It will hold the information-ablation strategies' use in the
curriculum build (needed-information identification, the student-fails filter, clarification and correction
dialogues, the recovery filter) and the benchmark's metrics (AccOr, AccCl, AccCo, clarification P/R).
"""
