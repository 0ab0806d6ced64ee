"""Rendering: the .vmx library, safe writes, the lab's files from templates/, the lab picture."""
