"""distill-ray: reasoning-distillation studies end to end on Ray (see README.md)."""
