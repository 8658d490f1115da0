"""What the tests and the benchmarks both build on: the drift data set and the team stack's
real servers. Neither ``tests`` nor ``bench`` imports the other; both import this package,
which imports only the project's own packages."""
