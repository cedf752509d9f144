"""Stage 1: source adapters, image opening and validation, fingerprints, quality measures, pseudonyms."""
