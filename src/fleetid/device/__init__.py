"""Device-side host code: what runs on the device beside its secure element."""
