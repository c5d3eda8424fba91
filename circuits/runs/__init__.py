"""The end-to-end commands as library calls (discover, evaluate) and the run-directory format."""
