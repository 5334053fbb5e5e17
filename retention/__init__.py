"""Pure retention decision policy: expected value, credit gating, offers, channels, contact policy, control group."""
