"""Layer specs to Keras models: custom layers, ensembles, unroll/XLA rules, memory."""
