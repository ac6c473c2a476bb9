"""Training sparse encoders: losses, ensemble teachers, training data and the trainer."""
