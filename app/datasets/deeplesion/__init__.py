"""DeepLesion (NIH): DL_info.csv + Images_png/<patient>_<study>_<series>/<slice>.png, loose or zipped."""
