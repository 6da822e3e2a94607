"""Training half (needs TensorFlow): datasets, margin-loss training, distillation, Keras model I/O."""
