"""Leaf utilities every stage may use: files (atomic writes, JSON, hashes) and the process (signals, memory
watchdog, progress)."""
