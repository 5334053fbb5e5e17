"""Pure feature and label definitions: point-in-time customer snapshot, value tiers, life-cycle stage."""
