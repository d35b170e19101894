"""The Qt-free engine of LVM Studio: data, models, estimators, EM, training, checkpoints.

Nothing under lvm_studio.core imports Qt or pyqtgraph; scripts, notebooks and tests use it headless.
"""
