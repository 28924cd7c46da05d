"""Dataset builders that call a model: AmbigSQL from Spider (ACT §4.1, App. C). They write Examples in the shared
data model, so every trainer and the evaluator read their output like any loader's."""
