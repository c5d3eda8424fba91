"""The base layer every stage builds on: model loading, emotions, the SEV data, generation, hooks
(edits and reads as data), artifacts (atomic files, the shared error types) and shipped data files.
Nothing in ``core`` imports from the packages above it (the order: :data:`circuits.core.layers.LAYERS`)."""
