"""Device half: image decoding, BlazeFace detection, alignment to the ArcFace template, embedding."""
