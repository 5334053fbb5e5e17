"""`python -m pipelines` runs the churn CLI."""

from pipelines.cli import run

run()
