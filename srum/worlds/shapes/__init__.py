"""ShapesWorld: coloured, textured circles, squares and triangles on a 64 px canvas, with T2I-CompBench-style
prompts (grammar), ground-truth scenes (layout), a renderer, train/val/test prompt files with held-out attribute-shape
combinations (splits) and an exact pixel-only judge (oracle)."""
