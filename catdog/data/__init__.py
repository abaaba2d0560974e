"""Photos and the folders they sit in: bytes to pixels, zips, data folders, the app's own data sets. No TensorFlow."""
