"""`vigie model train` and `vigie sentiment eval`: how Vigie's head and adapters were made
and how a model is scored. `train` fits the head (`finetune`: the low-rank adapters),
`evaluation` reads labelled files and computes macro-recall. Never run by the worker."""
