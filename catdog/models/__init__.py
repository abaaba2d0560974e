"""The Keras models: the architectures a run can train and the augmentation layers. TensorFlow starts here."""
