"""The end-to-end moving-shapes demo: recipe (train the whole chain), analyser, evaluation."""
