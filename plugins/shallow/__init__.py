"""The paper's shallow baselines, one module per detector: OC-SVM, Isolation Forest, KDE and SSAD on raw or
autoencoder features (``features.py``), and the supervised classifier baseline."""
