"""Synthetic training data: label maps -> images with a trained generator (:mod:`.synthesize`), new label
layouts (:mod:`.layouts`), and filtering by a real-trained segmenter."""
