"""Streamlit retention cockpit and Evidently report rendering (read-only)."""
