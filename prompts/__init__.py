"""Prompt templates (Jinja2 files with metadata), shipped as package data."""
