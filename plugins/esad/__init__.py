"""ESAD: end-to-end deep semi-supervised anomaly detection with an encoder-decoder-encoder (Huang et al. 2020)."""
