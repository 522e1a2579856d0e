"""hydra/launcher=vectorized: aecli's Hydra launcher that trains every compatible job of a sweep as one
stacked model (aecli.vectorized) and runs the others one by one, each in the run folder the basic
launcher would give it."""
