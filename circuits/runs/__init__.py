"""The end-to-end jobs as library functions (discover, evaluate, demo, va, dose-response, faithfulness,
nulls, concepts, atlas, trace, export, prompts, redraw) and the run directory: :class:`~circuits.runs.rundir.Run`
reads one, :mod:`circuits.runs.layout` names its files. No argument parsing and no printing here
(progress bars aside): the command line is :mod:`circuits.cli`."""
