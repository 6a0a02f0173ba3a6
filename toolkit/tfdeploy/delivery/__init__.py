"""Delivery: generated CodeBuild buildspecs, their local runner, EventBridge pattern, publish and `ci` stages."""
