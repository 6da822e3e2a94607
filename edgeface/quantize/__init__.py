"""Device-side tools for .tflite files, no TensorFlow: the LiteRT quantizer (``tflite_quantize``, ``edgeface
quantize``) and the graph rewrites that make a float file quantize well (``tflite_rewrite``)."""
