"""quantfleet: quantize models, gate them on accuracy recovery, serve them on matching GPUs."""
