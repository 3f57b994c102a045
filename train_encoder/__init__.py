"""train_encoder: the DeBias-CLIP training recipe (separate from the library, like open_clip_train).

``python -m train_encoder {train,eval,export}``. Inside: ``config`` (every knob, YAML configs in
``configs/``), ``data`` (annotation readers, CLIP image transforms, resumable loaders),
``augment`` (DeBias caption augmentation), ``recipes`` (debias, long-clip), ``fix_clip`` (the
fix-clip recipe: masked patches, regional prompts, hierarchical alignment), ``losses``,
``model_setup`` (stretching and the frozen-position split), ``trainer`` (accelerate loop),
``checkpointing`` (exact resume), ``export`` (Hugging Face folders the pipelines load) and
``evaluation`` (retrieval, bias probes, hidden-state drift, reports); ``errors``, ``file_names``,
``token_states`` and ``model_output`` are the small modules everything else shares. Imports go one
way through those layers (ARCHITECTURE.md; ``tests/test_import_layers.py`` checks it). The library
it builds on (stretching, converters, loading, pipelines) is :mod:`debias_diffusion`.
"""

from . import fix_clip  # noqa: F401  (registers the fix-clip recipe)
