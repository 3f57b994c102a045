"""train_encoder: the DeBias-CLIP training recipe (separate from the library, like open_clip_train).

Available: ``data`` (annotation readers, CLIP image transforms, resumable loaders), ``augment``
(DeBias caption augmentation), ``recipes`` (debias, long-clip), ``losses`` and ``evaluation``
(retrieval, bias probes, reports). The trainer, checkpointing and export are still to land. The
library it builds on (stretching, converters, loading, pipelines) is :mod:`debias_diffusion`.
"""
