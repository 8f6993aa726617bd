"""Side-by-side benchmarks of dltool against PyTorch CPU and hand-written numpy."""
