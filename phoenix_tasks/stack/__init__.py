"""Stacks per environment: naming, render, plan, deploy, wait, remove."""
