"""Request and response models: the public contract of the service."""
