"""Pure modelling: LightGBM training, Optuna objective, calibration, metrics, reason codes, promotion rule."""
