"""The fleet: one command runs many cells (tags) in parallel, ordered, isolated, reported.

selection (which tags), schedule (in what order), retry (which failures to try again),
runner (threads, one cell lock and one log per cell), display (what a person sees),
results (the matrix, --json, the run record behind --only-failed), actions (plan/apply/destroy of
one cell), release (the annotated tags of a release at one commit).
"""
