"""The fast path for model4: MobileNetV2 features on ONNX Runtime, cached, and a head trained in NumPy.
No TensorFlow at import; the Keras fall-backs import it inside the function that needs it."""
