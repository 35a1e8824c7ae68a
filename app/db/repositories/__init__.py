"""All SQL of the service, one module per aggregate."""
