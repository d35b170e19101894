"""The shipped data (mnist.npz). Installed as the data package lvm_studio._resources (pyproject.toml);
lvm_studio/core/shipped.py finds it. The file makes the folder a regular package, which an editable
install's import finder needs to map it."""
