"""What a distillation writes: the torch replacement module, recompilation, the artifacts."""
