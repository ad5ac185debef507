"""The intake seam (`seam.Intake`) and the single-process intake behind it; the Redis
intake is in `distributed/`."""
