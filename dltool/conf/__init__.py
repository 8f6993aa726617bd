"""dltool's Hydra configs, one folder per group (a package so that wheels and pkg:// find them)."""
