"""A CSV to prepared arrays: reading, time index, holes, transforms, scaling, windows."""
