"""The teacher-student clarification and correction curriculum for table QA (Poelitz & McKenna, arXiv 2503.14167).

Paper step -> function:

- the teacher identifies the information a fully specified table question needs:
  :func:`curriculum.identify` (teacher prompt, verified against the answer's cells; rule fallback
  :func:`clarifylab.data.ablation_strategies.identify_needed_info`);
- an ablation strategy removes it (column, row, value, question; recorded as data the user can give back):
  :mod:`clarifylab.data.ablation_strategies` (shared layer, method-free), applied in :func:`curriculum.process_chunk`;
- the student-fails filter, the clarification dialogue (student asks, teacher judges — :mod:`judge` — and answers as
  user), the correction dialogue (teacher as user corrects with the missing information), the recovery filter:
  :func:`curriculum.process_chunk`; prompts in :mod:`prompts`;
- the build (resumable, cached, yield per stage and strategy, Examples out): :func:`curriculum.generate_ts_curriculum`
  (``generate.py task=ts_curriculum``);
- the benchmark's metrics AccOr, AccCl, AccCo, clarification precision / recall: :mod:`benchmark_metrics` (pure),
  played by :func:`benchmark.play_pairs` and run by :func:`benchmark.run_ts_benchmark` (``evaluate.py
  protocol=ts_benchmark``);
- fine-tuning on the curriculum: the shared SFT recipe (``train.py experiment=ts/finetune``, dataset=ts_curriculum).
"""
