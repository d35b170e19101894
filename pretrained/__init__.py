"""The shipped models and manifest.json. Installed as the data package lvm_studio._pretrained
(pyproject.toml); lvm_studio/core/shipped.py finds it. The file makes the folder a regular package,
which an editable install's import finder needs to map it. register.py is a maintainer's tool."""
