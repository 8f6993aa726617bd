"""The training layer: loop, evaluation, checkpoints, loggers and sweep summaries.

Entry points are plain functions that take a composed config (``trainer.train``,
``evaluation.evaluate_checkpoint``, ``predict.predict``); ``dltool.cli`` only wires Hydra to them.
"""
