"""What is computed: pure, importable functions and modules (no file-layout policy, no globals)."""
