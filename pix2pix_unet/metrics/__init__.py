"""Metrics, as pure functions of outputs and targets: images (:mod:`.image`), class maps (:mod:`.segment`),
instances (:mod:`.instance`), the segmenter score (:mod:`.segmenter`) and the classical baselines
that validation scores beside the generator (:mod:`.classical`). One copy of each."""
