"""SS-DGM: the semi-supervised deep generative model of Kingma et al. (2014), M2 and M1+M2."""
