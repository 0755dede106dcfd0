// Placeholder so the package builds while this target's tests are being written; delete once they exist.
