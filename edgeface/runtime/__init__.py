"""Device half: run .tflite files with ai-edge-litert; TensorFlow only when no light runtime exists."""
