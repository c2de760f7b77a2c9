"""The parts of the benchmark driver bench/run.py: settings, processes, load, report."""
