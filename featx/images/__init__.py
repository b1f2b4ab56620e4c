"""Images: the readers table (format -> reader), DICOM and SimpleITK volumes, 2D raster files, intensity
windows, slice selection and the preprocessing that turns a sample into a network input. No torch here:
this runs in light worker threads and processes."""
