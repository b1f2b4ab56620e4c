"""Typed results of fit, bench and finetune runs, and their JSON form (results.json)."""
