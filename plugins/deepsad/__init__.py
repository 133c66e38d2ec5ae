"""Deep SAD (Ruff et al., ICLR 2020) and Deep SVDD (Ruff et al., ICML 2018), with autoencoder pretraining."""
