"""Circuit discovery, stage by stage: the activation store, emotion directions, attribution (DLA,
neuron and head scores), ablation sweeps and sublayer influence."""
