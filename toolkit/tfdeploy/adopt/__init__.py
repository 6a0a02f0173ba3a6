"""Getting started: the example infra repo, the offline demo and `doctor`."""
