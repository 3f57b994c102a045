"""train_encoder: the DeBias-CLIP training recipe (separate from the library, like open_clip_train).

Not implemented yet: fine-tuning, evaluation and export land with the train_encoder issue. The
library it will build on (stretching, converters, loading) is :mod:`debias_diffusion`.
"""
