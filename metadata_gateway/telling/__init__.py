"""Telling what became of cues: delivery receipts for WebSocket clients, Prometheus metrics."""
