"""Plain NIfTI folders: volumes with label maps paired by name, images/ + labels/, or nnU-Net's imagesTr/labelsTr."""
