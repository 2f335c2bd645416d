"""BIS5k: H&E images with binary segmentation masks in `formal_{train,test}/{images,masks}/`."""
