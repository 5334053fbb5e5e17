"""Running stages: flows, the run lock, the cluster, deployments and the demo."""
