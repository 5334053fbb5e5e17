"""The synthetic operator: a generative model of customers and their behaviour, written as landing files."""
