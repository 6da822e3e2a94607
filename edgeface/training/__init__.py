"""The training half: everything here may import TensorFlow (tf-keras, tensorflow-model-optimization), and nothing
outside it, but the command line's training commands, imports it. Models (``models``), datasets and training loops
(``train``), compression (``compress``), export to .tflite (``export``), importing other formats
(``model_import``) and the compare/optimise search (``compare``)."""
