"""Deep active anomaly detection (Pimentel et al. 2018/2020): a trainable layer on a detector's per-sample signal."""
